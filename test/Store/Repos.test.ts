/**
 * EventsRepo, KeysRepo and MemoriesRepo on SQLite and on PostgreSQL (test/support/Stores.ts): the event log and
 * dead letters by topic, handler and time; keys found, listed, revoked and counted; memories with their float32
 * vectors (BLOB on SQLite, BYTEA on PostgreSQL) read back bit for bit, in pages along the index, ids in chunks,
 * usage updates, eviction order, the TTL sweep and the counts.
 */
import { assert } from "@effect/vitest"
import { Chunk, Effect, Layer, Option, Stream } from "effect"
import { EventsRepo } from "../../src/Store/EventsRepo.js"
import { KeysRepo, type StoredKey } from "../../src/Store/KeysRepo.js"
import { decodeVector, MemoriesRepo, type NewMemory } from "../../src/Store/MemoriesRepo.js"
import { eachStore, freshStore } from "../support/Stores.js"

const repos = Layer.mergeAll(EventsRepo.Default, KeysRepo.Default, MemoriesRepo.Default).pipe(
  Layer.provideMerge(freshStore)
)

const t0 = 1_780_000_000_000

const key = (id: string, createdAt: number): StoredKey => ({
  ...{ id, name: `key ${id}`, scopes: ["inference"], limits: { rpm: 60, tpm: 1000, priority: "batch" } },
  ...{ createdAt, revokedAt: null, secretHash: "cd".repeat(32) }
})

const memory = (id: string, agent: string, expiresAt: number, vector: ArrayLike<number>): NewMemory => ({
  ...{ id, agent, namespace: "n", text: `text ${id}`, importance: 0.3, createdAt: t0, lastUsedAt: t0, uses: 1 },
  ...{ expiresAt, model: "nomic-embed-text", vector }
})

eachStore("Repositories", (it) => {
  it.effect("events: by topic and time, oldest first; dead letters by handler, topic and pending", () =>
    Effect.gen(function* () {
      const events = yield* EventsRepo
      for (const [id, topic, at] of [
        ["e3", "t", t0 + 1],
        ["e1", "t", t0],
        ["e2", "t", t0],
        ["e4", "u", t0]
      ] as const)
        yield* events.insertEvent({ id, topic, payload: JSON.stringify({ id }), at })
      const ids = (q: Parameters<typeof events.events>[0]) => Effect.map(events.events(q), (l) => l.map((e) => e.id))
      assert.deepStrictEqual(yield* ids({ topic: "t", limit: 10 }), ["e1", "e2", "e3"])
      assert.deepStrictEqual(yield* ids({ topic: "t", since: t0 + 1, limit: 10 }), ["e3"])
      assert.deepStrictEqual(yield* ids({ topic: "t", until: t0 + 1, limit: 1 }), ["e1"])
      for (const [id, handler, topic] of [
        ["d1", "h1", "t"],
        ["d2", "h2", "t"],
        ["d3", "h1", "u"]
      ] as const)
        yield* events.insertDeadLetter({
          ...{ id, handler, topic, eventId: "e1", eventAt: t0, payload: "{}", cause: "boom", at: t0 + 5 },
          replayedAt: null
        })
      yield* events.markReplayed("d1", t0 + 9)
      const dead = (q: Parameters<typeof events.deadLetters>[0]) =>
        Effect.map(events.deadLetters(q), (l) => l.map((d) => d.id))
      assert.deepStrictEqual(yield* dead({ limit: 10 }), ["d1", "d2", "d3"])
      assert.deepStrictEqual(yield* dead({ handler: "h1", limit: 10 }), ["d1", "d3"])
      assert.deepStrictEqual(yield* dead({ topic: "t", pending: true, limit: 10 }), ["d2"])
      assert.deepStrictEqual(
        Option.map(yield* events.deadLetter("d1"), (d) => d.replayedAt),
        Option.some(t0 + 9)
      )
    }).pipe(Effect.provide(repos))
  )

  it.effect("keys: found, listed oldest first, revoked once, counted", () =>
    Effect.gen(function* () {
      const keys = yield* KeysRepo
      assert.isFalse(yield* keys.any)
      yield* keys.insert(key("k2", t0 + 1))
      yield* keys.insert(key("k1", t0))
      assert.deepStrictEqual(yield* keys.find("k1"), Option.some(key("k1", t0)))
      assert.deepStrictEqual(
        (yield* keys.list).map((k) => k.id),
        ["k1", "k2"]
      )
      assert.strictEqual(yield* keys.active, 2)
      const revoked = yield* keys.revoke("k1", t0 + 5)
      assert.deepStrictEqual(yield* keys.revoke("k1", t0 + 9), revoked, "revoking again changes nothing")
      assert.deepStrictEqual(
        Option.map(revoked, (k) => k.revokedAt),
        Option.some(t0 + 5)
      )
      assert.strictEqual(yield* keys.active, 1)
      assert.isTrue(yield* keys.any)
      const duplicate = yield* Effect.flip(keys.insert(key("k1", t0)))
      assert.strictEqual(duplicate.operation, "keys.insert")
    }).pipe(Effect.provide(repos))
  )

  it.effect("memories: vectors read back bit for bit; pins, usage, eviction order, sweep, counts", () =>
    Effect.gen(function* () {
      const memories = yield* MemoriesRepo
      yield* memories.pin({ namespace: "n", model: "nomic-embed-text", dim: 4 }, t0)
      assert.deepStrictEqual(yield* memories.pins, [{ namespace: "n", model: "nomic-embed-text", dim: 4 }])
      const exact = [0.1, -2.5e-38, 3.4e38, -0]
      yield* memories.insert(memory("m1", "a", t0 + 30, exact))
      yield* memories.insert(memory("m2", "a", t0 + 10, [1, 2, 3, 4]))
      yield* memories.insert({ ...memory("m3", "b", t0 + 20, [4, 3, 2, 1]), metadata: { source: "doc" } })
      const rows = Chunk.toReadonlyArray(yield* Stream.runCollect(memories.vectors("n")))
      const { vector } = rows.find((r) => r.id === "m1")!
      assert.deepStrictEqual(
        Array.from(decodeVector(vector)),
        Array.from(Float32Array.from(exact)),
        "float32 little-endian, bit for bit"
      )
      const [m3] = yield* memories.byIds(["m3"])
      assert.deepStrictEqual(m3, {
        ...{ id: "m3", agent: "b", namespace: "n", text: "text m3", importance: 0.3, createdAt: t0 },
        ...{ lastUsedAt: t0, uses: 1, expiresAt: t0 + 20, metadata: { source: "doc" } }
      })
      yield* memories.updateUsage({ id: "m2", importance: 0.7, lastUsedAt: t0 + 50, uses: 2, expiresAt: t0 + 90 })
      const [m2] = yield* memories.byIds(["m2"])
      assert.deepStrictEqual([m2!.importance, m2!.lastUsedAt, m2!.uses, m2!.expiresAt], [0.7, t0 + 50, 2, t0 + 90])
      assert.deepStrictEqual(yield* memories.evictionOrder("n", "a", "none", 10), ["m1", "m2"])
      assert.deepStrictEqual(yield* memories.evictionOrder("n", "a", "m1", 10), ["m2"])
      assert.deepStrictEqual(
        [...(yield* memories.expired(t0 + 30))].sort((x, y) => x.id.localeCompare(y.id)),
        [
          { id: "m1", namespace: "n" },
          { id: "m3", namespace: "n" }
        ],
        "in no particular order"
      )
      assert.deepStrictEqual(
        [...(yield* memories.counts)].sort((x, y) => x.agent.localeCompare(y.agent)),
        [
          { namespace: "n", agent: "a", n: 2 },
          { namespace: "n", agent: "b", n: 1 }
        ]
      )
      yield* memories.remove(["m1", "m3"])
      assert.deepStrictEqual(
        (yield* memories.byIds(["m1", "m2", "m3"])).map((m) => m.id),
        ["m2"]
      )
    }).pipe(Effect.provide(repos))
  )

  it.effect("memories: thousands of rows read in pages along the index, ids in chunks", () =>
    Effect.gen(function* () {
      const memories = yield* MemoriesRepo
      yield* memories.pin({ namespace: "n", model: "nomic-embed-text", dim: 2 }, t0)
      const all = Array.from({ length: 2_345 }, (_, i) =>
        memory(`m${String(i).padStart(5, "0")}`, i % 3 === 0 ? "a" : "b", t0 + (i % 7), [i, -i])
      )
      yield* memories.transaction(memories.insertMany(all))
      const read = Chunk.toReadonlyArray(yield* Stream.runCollect(memories.vectors("n")))
      assert.strictEqual(read.length, all.length)
      assert.strictEqual(new Set(read.map((r) => r.id)).size, all.length, "no row twice across pages")
      const order = read.map((r) => `${r.agent} ${String(r.expires_at).padStart(16, "0")} ${r.id}`)
      assert.deepStrictEqual(order, [...order].sort(), "index order (agent, expires_at, id)")
      const ids = all.map((m) => m.id)
      assert.strictEqual((yield* memories.byIds(ids)).length, all.length)
      yield* memories.remove(ids.slice(0, 1_200))
      assert.strictEqual((yield* memories.byIds(ids)).length, all.length - 1_200)
    }).pipe(Effect.provide(repos))
  )
})
