/**
 * A recall's usage marks are written behind (VectorMemoryUsage.ts): the recall returns the memory as used, the row
 * follows one flush period later; what reads usage from the table (a sweep, a merge) sees the unwritten marks.
 * SQLite and PostgreSQL, TestClock.
 */
import { SqlClient } from "@effect/sql"
import { assert, describe } from "@effect/vitest"
import { Effect, Layer, Schedule, TestClock, TestServices } from "effect"
import { VectorMemory, type Options } from "../../src/Agent/VectorMemory.js"
import { Embedder } from "../../src/Agent/VectorMemoryEmbedder.js"
import { chunkRows } from "../../src/Agent/VectorMemoryUsage.js"
import { embedding } from "../../src/Simulator/Embedding.js"
import { eachStore, freshStore } from "../support/Stores.js"

const fakeEmbedder = Layer.succeed(Embedder, {
  embed: (_model, texts) => Effect.succeed(texts.map((text) => embedding(text, 32)))
})
const withMemory = (options: Options) =>
  Effect.provide(
    VectorMemory.Default({ model: "fake-32", sweepEvery: "1000 days", ...options }).pipe(
      Layer.provideMerge(Layer.merge(freshStore, fakeEmbedder))
    )
  )

/** The stored uses of the memory (a BIGINT may read back as a string on PostgreSQL). */
const usesOf = (id: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ uses: number | string }>`SELECT uses FROM memories WHERE id = ${id}`, ([row]) => Number(row?.uses))
  )

/** Waits on the live clock for the flush's queries (PostgreSQL answers after `TestClock.adjust` returned). */
const storedUses = (id: string, uses: number) =>
  usesOf(id).pipe(
    Effect.repeat({ until: (n) => n === uses, schedule: Schedule.spaced("25 millis"), times: 20 }),
    TestServices.provideLive
  )

eachStore("VectorMemory usage marks", (it) => {
  describe("written behind", () => {
    it.scoped("a recall returns the memory used; the row follows one flush period later", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        const stored = yield* memory.remember({ agent: "a", namespace: "n", text: "the sky is blue" })
        yield* TestClock.adjust("10 millis")
        const [first] = yield* memory.recall({ namespace: "n", query: "sky", k: 1 })
        const [second] = yield* memory.recall({ namespace: "n", query: "sky", k: 1 })
        assert.strictEqual(first?.memory.uses, 2)
        assert.strictEqual(second?.memory.uses, 3, "a use counts on top of the unwritten one")
        assert.strictEqual(yield* usesOf(stored.id), 1, "not written yet")
        yield* TestClock.adjust("1 second")
        yield* storedUses(stored.id, 3)
        assert.strictEqual(yield* usesOf(stored.id), 3)
      }).pipe(withMemory({}))
    )

    it.scoped("a backlog larger than one flush transaction is written in full", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        const vector = (i: number) => Array.from({ length: 32 }, (_, d) => Math.sin(i * 7.1 + d * 1.3))
        for (let i = 0; i < chunkRows + 20; i++)
          yield* memory.rememberVector({ agent: "a", namespace: "v", text: `t${i}`, model: "m", vector: vector(i) })
        const hits = yield* memory.recall({ namespace: "v", query: vector(0), k: chunkRows + 20 })
        assert.lengthOf(hits, chunkRows + 20)
        yield* TestClock.adjust("1 second")
        const sql = yield* SqlClient.SqlClient
        const used = sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM memories WHERE uses = 2`
        const n = yield* Effect.map(used, ([row]) => Number(row?.n)).pipe(
          Effect.repeat({ until: (n) => n === chunkRows + 20, schedule: Schedule.spaced("25 millis"), times: 20 }),
          Effect.zipRight(Effect.map(used, ([row]) => Number(row?.n))),
          TestServices.provideLive
        )
        assert.strictEqual(n, chunkRows + 20)
      }).pipe(withMemory({ mergeThreshold: 1.01 }))
    )

    it.scoped("a sweep writes the marks first: a memory recalled since is not expired on its old expiry", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        const stored = yield* memory.remember({ agent: "a", namespace: "n", text: "plain", importance: 0 })
        yield* TestClock.adjust("50 minutes")
        assert.lengthOf(yield* memory.recall({ namespace: "n", query: "plain", k: 1 }), 1)
        yield* TestClock.adjust("20 minutes") // past the stored expiry (60 min), not the used one (110 min)
        assert.deepStrictEqual(yield* memory.sweep, { expired: 0, evicted: 0 })
        assert.strictEqual(yield* usesOf(stored.id), 2)
      }).pipe(withMemory({ ttl: "1 hour", usageFlushEvery: "1 day" }))
    )

    it.scoped("a merge counts the unwritten uses and writes them with its own", () =>
      Effect.gen(function* () {
        const memory = yield* VectorMemory
        const stored = yield* memory.remember({ agent: "a", namespace: "n", text: "Paris is in France" })
        yield* memory.recall({ namespace: "n", query: "Paris", k: 1 })
        const merged = yield* memory.remember({ agent: "a", namespace: "n", text: "paris is in france" })
        assert.strictEqual(merged.id, stored.id)
        assert.strictEqual(merged.uses, 3)
        assert.strictEqual(yield* usesOf(stored.id), 3)
      }).pipe(withMemory({ usageFlushEvery: "1 day" }))
    )
  })
})
