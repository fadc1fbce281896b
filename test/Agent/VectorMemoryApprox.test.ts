/**
 * VectorMemory over namespaces past `approximateFrom` (200 here): the graph is built in the background at start
 * and on growth, and forgets, expiry and per-agent recall stay correct through it. In-memory SQLite, TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, TestClock } from "effect"
import { VectorMemory } from "../../src/Agent/VectorMemory.js"
import { Embedder } from "../../src/Agent/VectorMemoryEmbedder.js"
import * as Store from "../../src/Store/Store.js"

const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const vectors = (n: number, next = random(3)) =>
  Array.from({ length: n }, () => Array.from({ length: 16 }, () => next() * 2 - 1))

const noEmbedder = Layer.succeed(Embedder, { embed: () => Effect.dieMessage("these tests store vectors only") })
const storeAndEmbedder = Layer.merge(Store.layerMemory, noEmbedder)
const start = Effect.map(
  Layer.build(VectorMemory.Default({ approximateFrom: 200, ttl: "1 hour", sweepEvery: "10 minutes" })),
  Context.get(VectorMemory)
)
const namespace = "n"
const model = "m"

/** Stores the vectors, agent "big" for all but every tenth ("small"); returns the memories' ids in order. */
const fill = (memory: VectorMemory, rows: ReadonlyArray<ReadonlyArray<number>>) =>
  Effect.forEach(rows, (vector, i) =>
    Effect.map(
      memory.rememberVector({ agent: i % 10 === 0 ? "small" : "big", namespace, text: `t${i}`, model, vector }),
      (m) => m.id
    )
  )

const mode = (memory: VectorMemory) => Effect.map(memory.stats, (s) => s[0]?.index)

describe("VectorMemory: approximate index", () => {
  it.scoped("builds the graph as a namespace grows and again at start, finding every memory by its vector", () =>
    Effect.gen(function* () {
      const rows = vectors(400)
      const ids = yield* Effect.scoped(
        Effect.gen(function* () {
          const memory = yield* start
          const ids = yield* fill(memory, rows)
          yield* memory.indexed
          assert.strictEqual(yield* mode(memory), "approximate")
          return ids
        })
      )
      const memory = yield* start
      assert.strictEqual((yield* memory.stats)[0]?.memories, 400)
      yield* memory.indexed
      assert.strictEqual(yield* mode(memory), "approximate")
      for (const i of [0, 1, 150, 399]) {
        const [hit] = yield* memory.recall({ namespace, query: rows[i]!, k: 1 })
        assert.strictEqual(hit?.memory.id, ids[i])
      }
    }).pipe(Effect.provide(storeAndEmbedder))
  )

  it.scoped("recall by agent returns k of that agent's memories, for a small and a large agent", () =>
    Effect.gen(function* () {
      const memory = yield* start
      yield* fill(memory, vectors(400))
      yield* memory.indexed
      for (const query of vectors(10, random(8))) {
        for (const agent of ["small", "big"]) {
          const hits = yield* memory.recall({ namespace, query, k: 10, agent })
          assert.strictEqual(hits.length, 10)
          assert.isTrue(hits.every((h) => h.memory.agent === agent))
        }
      }
    }).pipe(Effect.provide(storeAndEmbedder))
  )

  it.scoped("forgotten and expired memories leave the graph; below half the threshold recall is exact again", () =>
    Effect.gen(function* () {
      const memory = yield* start
      const rows = vectors(360)
      const ids = yield* fill(memory, rows.slice(0, 300)) // importance 0.5: they expire at 90 minutes
      yield* memory.indexed
      for (const id of ids.slice(0, 50)) assert.isTrue(yield* memory.forget(id))
      const gone = new Set(ids.slice(0, 50))
      for (const query of rows.slice(0, 50)) {
        const hits = yield* memory.recall({ namespace, query, k: 5 })
        assert.strictEqual(hits.length, 5)
        assert.isFalse(hits.some((h) => gone.has(h.memory.id)))
      }
      yield* TestClock.adjust("40 minutes")
      const later = yield* fill(memory, rows.slice(300)) // these expire at 130 minutes
      yield* TestClock.adjust("60 minutes")
      const [stats] = yield* memory.stats
      assert.strictEqual(stats!.memories, 60)
      assert.strictEqual(stats!.index, "exact")
      const alive = (yield* memory.recall({ namespace, query: rows[300]!, k: 400 })).map((h) => h.memory.id)
      assert.deepStrictEqual(alive.sort(), [...later].sort())
    }).pipe(Effect.provide(storeAndEmbedder))
  )
})
