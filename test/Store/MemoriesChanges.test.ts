/**
 * The namespaces' change counters (Store/MemoriesChanges.ts, kept by MemoriesRepo's writes) on SQLite and
 * PostgreSQL (test/support/Stores.ts): every inserting transaction takes the namespace's next version and stamps its
 * rows with it, every delete counts per namespace what it deleted, the rows inserted in a range of versions are read
 * in pages, and (PostgreSQL, real concurrency) a version is visible only with its rows, versions in commit order.
 */
import { assert } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Layer, Option, Stream } from "effect"
import { MemoriesRepo, type NewMemory } from "../../src/Store/MemoriesRepo.js"
import { eachStore, freshStore } from "../support/Stores.js"

const layer = MemoriesRepo.Default.pipe(Layer.provideMerge(freshStore))

const memory = (id: string, namespace = "n"): NewMemory => ({
  ...{ id, agent: "a", namespace, text: id, importance: 0.5, createdAt: 0, lastUsedAt: 0, uses: 1, expiresAt: 9 },
  ...{ model: "m", vector: [1, 0] }
})

const pinned = (...namespaces: ReadonlyArray<string>) =>
  Effect.flatMap(MemoriesRepo, (repo) =>
    Effect.forEach(namespaces, (namespace) => repo.pin({ namespace, model: "m", dim: 2 }, 0), { discard: true })
  )

const addedIds = (namespace: string, after: number, upTo: number) =>
  Effect.flatMap(MemoriesRepo, (repo) =>
    Effect.map(Stream.runCollect(repo.added(namespace, after, upTo)), (rows) =>
      Chunk.toReadonlyArray(rows).map((r) => `${r.seq}:${r.id}`)
    )
  )

/** A pause on the wall clock (the suite runs on a TestClock): real concurrency with the server is the point. */
const wallClock = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

const versions = (namespace: string) =>
  Effect.flatMap(MemoriesRepo, (repo) => Effect.map(repo.versions(namespace), Option.getOrThrow))

eachStore("MemoriesChanges", (it, kind) => {
  it.effect("inserts take the next version per namespace; deletes count per namespace; ranges read back", () =>
    Effect.gen(function* () {
      const repo = yield* MemoriesRepo
      yield* pinned("n", "o")
      assert.deepStrictEqual(yield* versions("n"), { version: 0, removed: 0 })
      assert.strictEqual(yield* repo.insert(memory("m1")), 1)
      assert.strictEqual(yield* repo.insert(memory("m2")), 2)
      yield* repo.insertMany([memory("m3"), memory("p1", "o"), memory("m4"), memory("p2", "o")])
      assert.deepStrictEqual(yield* versions("n"), { version: 3, removed: 0 }, "one version per transaction")
      assert.deepStrictEqual(yield* versions("o"), { version: 1, removed: 0 })
      assert.deepStrictEqual(yield* addedIds("n", 1, 3), ["2:m2", "3:m3", "3:m4"])
      assert.deepStrictEqual(yield* addedIds("n", 0, 1), ["1:m1"])

      const removals = yield* repo.remove(["p2", "m1", "m4", "gone"])
      assert.deepStrictEqual(removals, [
        { namespace: "n", ids: removals[0]!.ids, removed: 2 },
        { namespace: "o", ids: ["p2"], removed: 1 }
      ])
      assert.deepStrictEqual([...removals[0]!.ids].sort(), ["m1", "m4"])
      assert.deepStrictEqual(yield* versions("n"), { version: 3, removed: 2 }, "a delete is no version")
      assert.deepStrictEqual([...(yield* repo.ids("n"))].sort(), ["m2", "m3"])
      assert.deepStrictEqual(yield* repo.remove([]), [])
      assert.isTrue(Option.isNone(yield* repo.versions("unpinned")))
    }).pipe(Effect.provide(layer))
  )

  it.effect("a range of thousands of rows is read in pages, each row once, in version order", () =>
    Effect.gen(function* () {
      const repo = yield* MemoriesRepo
      yield* pinned("n")
      const ids = Array.from({ length: 2_500 }, (_, i) => `m${String(i).padStart(5, "0")}`)
      yield* repo.insertMany(ids.slice(0, 1_500).map((id) => memory(id)))
      yield* repo.insertMany(ids.slice(1_500).map((id) => memory(id)))
      const read = yield* addedIds("n", 0, 2)
      assert.strictEqual(read.length, 2_500)
      assert.deepStrictEqual(read, [
        ...ids.slice(0, 1_500).map((id) => `1:${id}`),
        ...ids.slice(1_500).map((id) => `2:${id}`)
      ])
      assert.strictEqual((yield* addedIds("n", 1, 2)).length, 1_000)
    }).pipe(Effect.provide(layer))
  )

  if (kind === "postgres") {
    it.effect("concurrent inserts: a version is visible only with its rows, and later versions commit later", () =>
      Effect.gen(function* () {
        const repo = yield* MemoriesRepo
        yield* pinned("n")
        const inside = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const slow = yield* Effect.fork(
          repo.transaction(
            Effect.tap(repo.insert(memory("first")), () =>
              Effect.zipRight(Deferred.succeed(inside, undefined), Deferred.await(release))
            )
          )
        )
        yield* Deferred.await(inside)
        const second = yield* Effect.fork(repo.insert(memory("second")))
        yield* wallClock(200) // the second insert reaches the server and waits there
        assert.deepStrictEqual(yield* versions("n"), { version: 0, removed: 0 }, "nothing visible before the commit")
        assert.isNull(second.unsafePoll(), "the second insert waits for the first's commit")
        yield* Deferred.succeed(release, undefined)
        const [first, next] = [yield* Fiber.join(slow), yield* Fiber.join(second)]
        assert.deepStrictEqual([first, next], [1, 2])
        assert.deepStrictEqual(yield* addedIds("n", 0, 2), ["1:first", "2:second"])
      }).pipe(Effect.provide(layer))
    )
  }
})
