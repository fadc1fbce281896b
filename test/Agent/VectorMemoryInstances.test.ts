/**
 * VectorMemory with two instances over one database (scale-out, or an episode taken over from a dead instance), on
 * SQLite and PostgreSQL (test/support/Stores.ts), with a deterministic Embedder:
 * - a namespace the other instance pinned after this one started is read from the table on first use, so writing
 *   in it is no conflict and recall finds what the other wrote;
 * - an index already loaded follows the other instance: its next recall finds a memory the other wrote since, and
 *   no longer returns one the other deleted (a forget, its sweep), still answering k when k remain; its writes
 *   merge into the other's near-duplicates; rows caught up past the graph's threshold get their graph built;
 * - a memory deleted behind the counters' back (between the catch-up and its use) is skipped, never fatal.
 */
import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Context, Effect, Layer, TestClock } from "effect"
import { VectorMemory } from "../../src/Agent/VectorMemory.js"
import { Embedder } from "../../src/Agent/VectorMemoryEmbedder.js"
import { embedding } from "../../src/Simulator/Embedding.js"
import { MemoriesRepo } from "../../src/Store/MemoriesRepo.js"
import { eachStore, freshStore } from "../support/Stores.js"

const fakeEmbedder = Layer.succeed(Embedder, {
  embed: (_model, texts) => Effect.succeed(texts.map((text) => embedding(text, 32)))
})
const shared = MemoriesRepo.Default.pipe(Layer.provideMerge(Layer.merge(freshStore, fakeEmbedder)))

/** An instance: its own VectorMemory (its own indexes) over the shared database; sweeps only when asked. */
const instanceWith = (approximateFrom = 5000) =>
  Effect.map(
    Layer.build(
      Layer.fresh(
        VectorMemory.DefaultWithoutDependencies({
          ...{ model: "fake-32", ttl: "1 minute", sweepEvery: "1000 days", approximateFrom }
        })
      )
    ),
    Context.get(VectorMemory)
  )
const instance = instanceWith()

const texts = (recalled: ReadonlyArray<{ readonly memory: { readonly text: string } }>) =>
  recalled.map((r) => r.memory.text).sort()

const countIn = (memory: VectorMemory, namespace: string) =>
  Effect.map(memory.stats, (all) => all.find((s) => s.namespace === namespace)?.memories)

const walker = (text: string) => ({ agent: "walker", namespace: "walker", text })

eachStore("VectorMemory: two instances on one database", (it) => {
  it.scoped("a namespace pinned by the other instance is read on first use: no conflict, its memories recalled", () =>
    Effect.gen(function* () {
      const [a, b] = [yield* instance, yield* instance]
      yield* a.remember(walker("the launch moved to friday"))
      yield* b.remember(walker("the venue is the harbour hall"))
      const recalled = yield* b.recall({ namespace: "walker", query: "when is the launch", k: 2 })
      assert.deepStrictEqual(texts(recalled), ["the launch moved to friday", "the venue is the harbour hall"])

      yield* a.remember({ agent: "scout", namespace: "scouting", text: "rain expected on friday" })
      const found = yield* b.recall({ namespace: "scouting", query: "rain on friday", k: 1 })
      assert.deepStrictEqual(texts(found), ["rain expected on friday"])
      assert.strictEqual(yield* countIn(b, "scouting"), 1)
    }).pipe(Effect.provide(shared))
  )

  it.scoped("a loaded index sees the other's new memories at its next recall and drops what the other deleted", () =>
    Effect.gen(function* () {
      const [a, b] = [yield* instance, yield* instance]
      const launch = yield* a.remember(walker("the launch moved to friday"))
      assert.deepStrictEqual(texts(yield* b.recall({ namespace: "walker", query: "launch", k: 5 })), [
        "the launch moved to friday"
      ])

      const venue = yield* a.remember(walker("the venue is the harbour hall"))
      const both = yield* b.recall({ namespace: "walker", query: "launch", k: 5 })
      assert.deepStrictEqual(texts(both), ["the launch moved to friday", "the venue is the harbour hall"])

      assert.isTrue(yield* a.forget(launch.id))
      const [best] = yield* b.recall({ namespace: "walker", query: "the launch moved to friday", k: 1 })
      assert.strictEqual(best?.memory.text, "the venue is the harbour hall", "k answered from what remains")
      assert.strictEqual(yield* countIn(b, "walker"), 1, "dropped from b's index")

      const merged = yield* b.remember(walker("the venue is the harbour hall"))
      assert.strictEqual(merged.id, venue.id, "merged into a's memory, not a copy")
      assert.strictEqual(yield* countIn(a, "walker"), 1)
    }).pipe(Effect.provide(shared))
  )

  it.scoped("what the other instance's sweep deleted is gone from this one's index at its next write", () =>
    Effect.gen(function* () {
      const [a, b] = [yield* instance, yield* instance]
      yield* a.remember(walker("an old note"))
      yield* b.recall({ namespace: "walker", query: "note", k: 5 })
      yield* TestClock.adjust("2 minutes")
      yield* b.remember(walker("the launch moved to friday"))
      assert.deepStrictEqual(yield* a.sweep, { expired: 1, evicted: 0 }, "a's sweep deletes the old note")
      yield* b.remember(walker("the venue is the harbour hall"))
      assert.strictEqual(yield* countIn(b, "walker"), 2, "the old note dropped, the two new ones in")
      assert.deepStrictEqual(texts(yield* b.recall({ namespace: "walker", query: "an old note", k: 5 })), [
        "the launch moved to friday",
        "the venue is the harbour hall"
      ])
      assert.deepStrictEqual(yield* b.sweep, { expired: 0, evicted: 0 })
    }).pipe(Effect.provide(shared))
  )

  it.scoped("memories caught up past the graph's threshold get their graph built, as this instance's own would", () =>
    Effect.gen(function* () {
      const [a, b] = [yield* instance, yield* instanceWith(4)]
      yield* a.remember(walker("the launch moved to friday"))
      yield* b.recall({ namespace: "walker", query: "launch", k: 1 })
      for (const text of ["the venue is the harbour hall", "rain expected", "bring the banners", "tickets sold out"]) {
        yield* a.remember(walker(text))
      }
      const [best] = yield* b.recall({ namespace: "walker", query: "tickets sold out", k: 1 })
      assert.strictEqual(best?.memory.text, "tickets sold out")
      yield* b.indexed
      const [stats] = yield* b.stats
      assert.deepInclude(stats, { memories: 5, index: "approximate" })
    }).pipe(Effect.provide(shared))
  )

  it.scoped("a memory deleted between the catch-up and its use is skipped: a merge becomes an insert", () =>
    Effect.gen(function* () {
      const [a, b] = [yield* instance, yield* instance]
      const note = yield* a.remember(walker("the launch moved to friday"))
      yield* b.recall({ namespace: "walker", query: "launch", k: 5 })
      // deleted without the counters (as if between b's catch-up and b's use of it)
      const sql = yield* SqlClient.SqlClient
      yield* sql`DELETE FROM memories WHERE id = ${note.id}`.pipe(Effect.orDie)
      assert.deepStrictEqual(yield* b.recall({ namespace: "walker", query: "launch", k: 5 }), [])
      yield* a.remember(walker("the venue is the harbour hall"))
      const again = yield* a.remember(walker("the launch moved to friday"))
      assert.notStrictEqual(again.id, note.id, "stored anew, not merged into the deleted row")
      assert.deepStrictEqual(texts(yield* b.recall({ namespace: "walker", query: "launch", k: 5 })), [
        "the launch moved to friday",
        "the venue is the harbour hall"
      ])
    }).pipe(Effect.provide(shared))
  )
})
