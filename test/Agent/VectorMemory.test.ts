/**
 * VectorMemory over SQLite and PostgreSQL (test/support/Stores.ts) with a deterministic Embedder (the simulator's
 * hashed bag-of-words: texts sharing words are closer), time on the TestClock; the query plans on SQLite; one live
 * test through the engine.
 */
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Schedule, TestClock, TestServices } from "effect"
import { VectorMemory, type Options } from "../../src/Agent/VectorMemory.js"
import { Embedder, layerLlm } from "../../src/Agent/VectorMemoryEmbedder.js"
import * as Engine from "../../src/Llm/Engine.js"
import { embedding } from "../../src/Simulator/Embedding.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import * as Changes from "../../src/Store/MemoriesChanges.js"
import { decodeVector, MemoriesRepo, queries } from "../../src/Store/MemoriesRepo.js"
import * as Store from "../../src/Store/Store.js"
import { eachStore, freshStore } from "../support/Stores.js"

/** "fake-32" embeds in 32 dimensions. */
const dimOf = (model: string) => Number(/-(\d+)/.exec(model)?.[1] ?? 768)
const fakeEmbedder = Layer.succeed(Embedder, {
  embed: (model, texts) => Effect.succeed(texts.map((text) => embedding(text, dimOf(model))))
})
const storeAndEmbedder = Layer.merge(freshStore, fakeEmbedder)
const withMemory = (options: Options = {}) =>
  Effect.provide(VectorMemory.Default({ model: "fake-32", ...options }).pipe(Layer.provideMerge(storeAndEmbedder)))

/** A unit vector along axis `i` of `dim`, rotated towards axis `j` by `t` (cosine with axis i: cos t). */
const axis = (dim: number, i: number, j = i, t = 0) => {
  const v = new Array<number>(dim).fill(0)
  v[i] = Math.cos(t)
  v[j] = (v[j] ?? 0) + Math.sin(t)
  return v
}

/** The rows of `memories` (a COUNT is a numeric string on PostgreSQL). */
const count = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM memories`, ([row]) => Number(row?.n))
)

/**
 * Until `memories` has `n` rows: waits on the live clock for the sweep's queries (PostgreSQL answers over a socket,
 * after `TestClock.adjust` has returned), then moves the TestClock one sweep period (10 minutes), at most `steps`
 * times. A sweep woken by an adjust whose queries end after it sleeps from then on, so without a further step no
 * sweep would run at the time the test moved to.
 */
const sweptTo = (n: number, steps: number) =>
  Effect.gen(function* () {
    for (let step = 0; step < steps; step++) {
      yield* count.pipe(
        Effect.repeat({ until: (rows) => rows === n, schedule: Schedule.spaced("25 millis"), times: 10 }),
        TestServices.provideLive
      )
      if ((yield* count) === n) return
      yield* TestClock.adjust("10 minutes")
    }
    assert.strictEqual(yield* count, n)
  })

eachStore("VectorMemory", (it, kind) => {
  describe("namespaces and dimensions", () => {
    it.scoped("pins a namespace to the model and dimension of its first write", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        yield* memory.remember({ agent: "a", namespace: "facts", text: "the sky is blue" })
        const [stats] = yield* memory.stats
        assert.deepStrictEqual(stats, {
          namespace: "facts",
          model: "fake-32:latest",
          dim: 32,
          memories: 1,
          agents: { a: 1 },
          index: "exact"
        })
      }).pipe(withMemory())
    )

    it.scoped("rejects another dimension on write and on query with DimensionMismatch naming both", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        yield* memory.rememberVector({ agent: "a", namespace: "n", text: "x", model: "fake-16", vector: axis(16, 0) })
        const write = yield* Effect.flip(
          memory.rememberVector({ agent: "a", namespace: "n", text: "y", model: "fake-16", vector: axis(8, 0) })
        )
        assert.strictEqual(write._tag, "DimensionMismatch")
        assert.include(write.message, "dimension 16")
        assert.include(write.message, "dimension 8")
        const query = yield* Effect.flip(memory.recall({ namespace: "n", query: axis(24, 1), k: 1 }))
        assert.deepInclude(query, { expected: 16, actual: 24, expectedModel: "fake-16:latest" })
        const text = yield* Effect.flip(memory.remember({ agent: "a", namespace: "n", text: "z", model: "fake-32" }))
        assert.deepInclude(text, { expected: 16, actual: 32, actualModel: "fake-32:latest" })
        assert.include(text.message, "fake-16:latest")
        assert.include(text.message, "fake-32:latest")
        assert.strictEqual((yield* memory.stats)[0]?.memories, 1)
      }).pipe(withMemory())
    )

    it.scoped("stores vectors as float32 little-endian blobs that read back as written", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        const sql = yield* SqlClient.SqlClient
        const vector = [0.1, -2.5, 3.14159, 1e-7, 0, 65504.25, -1e-30, 42]
        const stored = yield* memory.rememberVector({ agent: "a", namespace: "n", text: "v", model: "m", vector })
        const [row] = yield* sql<{ vector: Uint8Array; dim: number }>`SELECT vector, dim FROM memories`
        assert.strictEqual(row?.vector.byteLength, 32)
        assert.strictEqual(row?.dim, 8)
        assert.deepStrictEqual(Array.from(decodeVector(row!.vector)), vector.map(Math.fround))
        assert.strictEqual(
          new DataView(row!.vector.buffer, row!.vector.byteOffset).getFloat32(4, true),
          Math.fround(-2.5)
        )
        assert.strictEqual(stored.uses, 1)
      }).pipe(withMemory())
    )
  })

  describe("recall", () => {
    const seed = (memory: VectorMemory) =>
      Effect.forEach(
        [
          { agent: "a", text: "exact", vector: axis(4, 0) },
          { agent: "a", text: "close", vector: axis(4, 0, 1, 0.6) },
          { agent: "b", text: "other agent, exact", vector: axis(4, 0, 2, 0.01) },
          { agent: "a", text: "orthogonal", vector: axis(4, 3) }
        ],
        (m) =>
          Effect.zipLeft(
            memory.rememberVector({ ...m, namespace: "n", model: "m" }),
            TestClock.adjust("1 second") // created at 0, 1000, 2000, 3000 ms
          )
      )
    const texts = (hits: ReadonlyArray<{ memory: { text: string } }>) => hits.map((h) => h.memory.text)

    it.scoped("returns the top k by cosine, best first, filtered by agent, time range and minimum score", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        yield* seed(memory)
        const all = yield* memory.recall({ namespace: "n", query: [2, 0, 0, 0], k: 3 })
        assert.deepStrictEqual(texts(all), ["exact", "other agent, exact", "close"])
        assert.closeTo(all[0]!.score, 1, 1e-6)
        assert.closeTo(all[2]!.score, Math.cos(0.6), 1e-6)
        const mine = yield* memory.recall({ namespace: "n", query: axis(4, 0), k: 10, agent: "a" })
        assert.deepStrictEqual(texts(mine), ["exact", "close", "orthogonal"])
        const recent = yield* memory.recall({ namespace: "n", query: axis(4, 0), k: 10, since: 1000, until: 2000 })
        assert.deepStrictEqual(texts(recent), ["other agent, exact", "close"])
        const good = yield* memory.recall({ namespace: "n", query: axis(4, 0), k: 10, minScore: 0.9 })
        assert.deepStrictEqual(texts(good), ["exact", "other agent, exact"])
        assert.deepStrictEqual(yield* memory.recall({ namespace: "n", query: axis(4, 0), k: 3, agent: "c" }), [])
        assert.deepStrictEqual(yield* memory.recall({ namespace: "unknown", query: "anything", k: 3 }), [])
      }).pipe(withMemory({ mergeThreshold: 0.99999 }))
    )

    it.scoped("counts a recall as a use: uses + 1 and last use now", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        yield* seed(memory)
        const [hit] = yield* memory.recall({ namespace: "n", query: axis(4, 3), k: 1 })
        assert.strictEqual(hit?.memory.text, "orthogonal")
        assert.strictEqual(hit?.memory.uses, 2)
        assert.strictEqual(hit?.memory.lastUsedAt, 4000)
        assert.strictEqual(hit?.memory.createdAt, 3000)
      }).pipe(withMemory({ mergeThreshold: 0.99999 }))
    )

    it.scoped("rebuilds the same index when the service starts again over the same database", () =>
      Effect.gen(function* () {
        const start = Effect.map(Layer.build(VectorMemory.Default({ model: "fake-32" })), Context.get(VectorMemory))
        const snapshot = (memory: VectorMemory) =>
          Effect.all({
            stats: memory.stats,
            hits: Effect.forEach(["apple pie", "river light", "quick fox", "the model"], (query) =>
              Effect.map(memory.recall({ namespace: "n", query, k: 5 }), (hits) =>
                hits.map((h) => [h.memory.id, h.score.toFixed(6)])
              )
            )
          })
        const before = yield* Effect.scoped(
          Effect.gen(function* () {
            const memory = yield* start
            const words = ["apple", "pie", "river", "light", "quick", "brown", "fox", "the", "model", "bright"]
            for (let i = 0; i < 40; i++) {
              const text = `${words[i % 10]} ${words[(i * 3 + 1) % 10]} ${words[(i * 7 + 2) % 10]} ${i}`
              yield* memory.remember({ agent: i % 2 === 0 ? "a" : "b", namespace: "n", text })
            }
            return yield* snapshot(memory)
          })
        )
        const after = yield* Effect.scoped(Effect.flatMap(start, snapshot))
        assert.strictEqual(before.stats[0]?.memories, 40)
        assert.deepStrictEqual(after, before)
      }).pipe(Effect.provide(storeAndEmbedder))
    )

    it.scoped("rebuilds every row across pages at start (rows written by the repository directly)", () =>
      Effect.gen(function* () {
        const repo = yield* MemoriesRepo
        yield* repo.pin({ namespace: "bulk", model: "m:latest", dim: 8 }, 0)
        const rows = Array.from({ length: 2500 }, (_, i) => ({
          ...{ id: `m${i}`, agent: `agent${i % 7}`, namespace: "bulk", text: `t${i}`, importance: (i % 3) / 2 },
          ...{ createdAt: i, lastUsedAt: i, uses: 1, expiresAt: 1e12 + (i % 11), model: "m:latest" },
          vector: embedding(`word${i}`, 8)
        }))
        yield* repo.transaction(repo.insertMany(rows))
        const memory = yield* Effect.map(Layer.build(VectorMemory.Default()), Context.get(VectorMemory))
        const [stats] = yield* memory.stats
        assert.strictEqual(stats?.memories, 2500)
        assert.strictEqual(stats?.agents["agent3"], rows.filter((r) => r.agent === "agent3").length)
        for (const i of [0, 999, 1000, 1777, 2499]) {
          const [hit] = yield* memory.recall({ namespace: "bulk", query: rows[i]!.vector, k: 1 })
          assert.strictEqual(hit?.memory.id, `m${i}`)
        }
      }).pipe(Effect.provide(MemoriesRepo.Default.pipe(Layer.provideMerge(storeAndEmbedder))))
    )
  })

  describe("cleanup", () => {
    it.scoped("holds the capacity per (agent, namespace) under 10x over-insertion; importance protects", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        const keep = yield* memory.remember({ agent: "a", namespace: "n", text: "precious", importance: 1 })
        for (let i = 0; i < 100; i++) {
          yield* memory.remember({ agent: "a", namespace: "n", text: `note${i}`, importance: 0 })
          yield* memory.remember({ agent: "b", namespace: "n", text: `note${i}`, importance: 0 })
          yield* TestClock.adjust("1 second")
        }
        const [stats] = yield* memory.stats
        assert.deepStrictEqual(stats?.agents, { a: 10, b: 10 })
        assert.strictEqual(yield* count, 20)
        const [hit] = yield* memory.recall({ namespace: "n", query: "precious", k: 1, agent: "a" })
        assert.strictEqual(hit?.memory.id, keep.id)
        const newest = yield* memory.recall({ namespace: "n", query: "note99", k: 1, agent: "b" })
        assert.strictEqual(newest[0]?.memory.text, "note99")
        assert.deepStrictEqual(yield* memory.sweep, { expired: 0, evicted: 0 })
      }).pipe(withMemory({ capacity: 10 }))
    )

    // TestClock.adjust wakes the sweep but does not wait for its queries: SQLite answers within the step, PostgreSQL
    // over a socket after it (`sweptTo`)
    it.scoped("the scheduled sweep deletes expired memories: ttl × (1 + importance) after the last use", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        const plain = yield* memory.remember({ agent: "a", namespace: "n", text: "plain", importance: 0 })
        const vital = yield* memory.remember({ agent: "a", namespace: "n", text: "vital", importance: 1 })
        assert.deepStrictEqual([plain.expiresAt, vital.expiresAt], [3_600_000, 7_200_000])
        yield* TestClock.adjust("70 minutes")
        yield* sweptTo(1, 4) // plain expired at 60 min; vital lives until 120 min at least
        const left = yield* memory.recall({ namespace: "n", query: "plain vital", k: 5 })
        assert.deepStrictEqual(
          left.map((h) => h.memory.text),
          ["vital"]
        )
        yield* TestClock.adjust("150 minutes") // vital was used by the recall: it expires 120 min after it
        yield* sweptTo(0, 6)
        assert.strictEqual((yield* memory.stats)[0]?.memories, 0)
      }).pipe(withMemory({ ttl: "1 hour", sweepEvery: "10 minutes" }))
    )

    it.scoped("merges near-duplicates: the same text twice is one memory used twice", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        const first = yield* memory.remember({
          agent: "a",
          namespace: "n",
          text: "Paris is in France",
          importance: 0.2
        })
        yield* TestClock.adjust("1 minute")
        const again = yield* memory.remember({
          agent: "a",
          namespace: "n",
          text: "paris is in france",
          importance: 0.7
        })
        assert.strictEqual(again.id, first.id)
        assert.strictEqual(again.uses, 2)
        assert.strictEqual(again.importance, 0.7)
        assert.strictEqual(again.lastUsedAt, 60_000)
        const other = yield* memory.remember({ agent: "b", namespace: "n", text: "Paris is in France" })
        assert.notStrictEqual(other.id, first.id)
        const distinct = yield* memory.remember({ agent: "a", namespace: "n", text: "Rome is in Italy" })
        assert.notStrictEqual(distinct.id, first.id)
        assert.deepStrictEqual((yield* memory.stats)[0]?.agents, { a: 2, b: 1 })
        assert.isTrue(yield* memory.forget(distinct.id))
        assert.isFalse(yield* memory.forget(distinct.id))
        assert.strictEqual(yield* count, 2)
      }).pipe(withMemory())
    )
  })
})

describe("VectorMemory: storage", () => {
  it.scoped("EXPLAIN QUERY PLAN: the memories-by-namespace, eviction and expiry queries use an index", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const q = queries(sql)
      const plan = (statement: { compile: () => readonly [string, ReadonlyArray<unknown>] }) => {
        const [text, params] = statement.compile()
        return Effect.map(sql.unsafe<{ detail: string }>(`EXPLAIN QUERY PLAN ${text}`, params), (rows) =>
          rows.map((r) => r.detail).join("; ")
        )
      }
      const byNamespace = yield* plan(q.vectorsByNamespace("n", 10))
      const nextPage = yield* plan(
        q.vectorsByNamespace("n", 10, { id: "x", agent: "a", created_at: 0, expires_at: 0, vector: new Uint8Array() })
      )
      assert.match(byNamespace, /SEARCH memories USING INDEX memories_by_namespace \(namespace=\?\)/)
      assert.notInclude(byNamespace, "TEMP B-TREE")
      assert.match(
        nextPage,
        /SEARCH memories USING INDEX memories_by_namespace \(namespace=\? AND \(agent,expires_at,id\)>\(\?,\?,\?\)\)/
      )
      assert.notInclude(nextPage, "TEMP B-TREE")
      const eviction = yield* plan(q.evictionOrder("n", "a", "x", 5))
      assert.match(eviction, /SEARCH memories USING COVERING INDEX memories_by_namespace \(namespace=\? AND agent=\?\)/)
      assert.notInclude(eviction, "TEMP B-TREE")
      assert.match(yield* plan(q.expired(0)), /SEARCH memories USING INDEX memories_by_expiry \(expires_at<\?\)/)
      assert.match(yield* plan(q.counts()), /SCAN memories USING COVERING INDEX memories_by_namespace/)

      const changes = Changes.queries(sql)
      const added = yield* plan(changes.added("n", 3, 7, 10))
      assert.match(added, /SEARCH memories USING INDEX memories_by_seq \(namespace=\? AND seq>\? AND seq<\?\)/)
      assert.notInclude(added, "TEMP B-TREE")
      const addedNext = yield* plan(changes.added("n", 3, 7, 10, { seq: 4, id: "x" }))
      assert.match(
        addedNext,
        /SEARCH memories USING INDEX memories_by_seq \(namespace=\? AND \(seq,id\)>\(\?,\?\) AND seq<\?\)/
      )
      assert.notInclude(addedNext, "TEMP B-TREE")
      assert.match(
        yield* plan(changes.ids("n")),
        /SEARCH memories USING COVERING INDEX memories_by_\w+ \(namespace=\?\)/
      )
    }).pipe(Effect.provide(Store.layerMemory))
  )
})

describe("VectorMemory through the engine", () => {
  const engine = Layer.unwrapEffect(
    Effect.map(Simulator, (sim) => Engine.layer({ backends: [{ url: sim.url }] }))
  ).pipe(Layer.provide(Simulator.layerTest(fast())))
  const live = VectorMemory.Default({ model: "nomic-embed-text" }).pipe(
    Layer.provide(Layer.merge(Store.layerMemory, layerLlm.pipe(Layer.provide(engine))))
  )

  it.scopedLive("remembers three texts with nomic-embed-text (768) and recalls the one sharing words first", () =>
    Effect.gen(function* () {
      const memory = yield* VectorMemory
      for (const text of ["the cat sat on the warm mat", "stock prices fell sharply today", "rain is expected"]) {
        yield* memory.remember({ agent: "a", namespace: "n", text })
      }
      const hits = yield* memory.recall({ namespace: "n", query: "where is the cat sitting? on a mat", k: 3 })
      assert.strictEqual(hits[0]?.memory.text, "the cat sat on the warm mat")
      assert.strictEqual(hits.length, 3)
      assert.deepInclude((yield* memory.stats)[0], { model: "nomic-embed-text:latest", dim: 768, memories: 3 })
    }).pipe(Effect.provide(live))
  )
})
