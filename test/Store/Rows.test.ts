/**
 * Every repository reads and writes rows one way (Store/Rows.ts over SqlSchema): a row the table holds that this
 * version cannot read, or a value that cannot be written, is a typed StorageError naming the operation (not a
 * defect), and the codecs round-trip what they write (NULL columns as absent fields, vectors as float32 blobs).
 * On SQLite and on PostgreSQL (test/support/Stores.ts).
 */
import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { EpisodesRepo } from "../../src/Store/EpisodesRepo.js"
import { EventsRepo } from "../../src/Store/EventsRepo.js"
import { KeysRepo, type StoredKey } from "../../src/Store/KeysRepo.js"
import { MemoriesRepo } from "../../src/Store/MemoriesRepo.js"
import type { StorageError } from "../../src/Store/StorageError.js"
import { eachStore, freshStore } from "../support/Stores.js"

const repos = Layer.mergeAll(EpisodesRepo.Default, EventsRepo.Default, KeysRepo.Default, MemoriesRepo.Default).pipe(
  Layer.provideMerge(freshStore)
)

/** The failure of `effect`, which must be a StorageError of `operation` (a defect fails the test). */
const unreadable = <A, R>(operation: string, effect: Effect.Effect<A, StorageError, R>) =>
  Effect.map(Effect.flip(effect), (error) => {
    assert.strictEqual(error._tag, "StorageError")
    assert.strictEqual(error.operation, operation)
    assert.isFalse(error.retryable)
    assert.match(error.reason, /^row does not match its schema: /)
    return error
  })

const key: StoredKey = {
  id: "k1",
  name: "ci",
  scopes: ["inference", "admin"],
  limits: { rpm: 60, budget: { tokens: 1000 } },
  createdAt: 5,
  revokedAt: null,
  secretHash: "ab".repeat(32)
}

eachStore("Rows: every repository decodes its rows the same way", (it) => {
  it.effect("events: a time that is not a number is a StorageError of the read", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const repo = yield* EventsRepo
      yield* repo.insertEvent({ id: "e1", topic: "t", payload: "{}", at: 1 })
      yield* repo.insertDeadLetter({
        ...{ id: "d1", handler: "h", topic: "t", eventId: "e1", eventAt: 1, payload: "{}", cause: "boom" },
        ...{ at: 2, replayedAt: null }
      })
      assert.deepStrictEqual(
        yield* repo.deadLetter("d1"),
        Option.some({
          ...{ id: "d1", handler: "h", topic: "t", eventId: "e1", eventAt: 1, payload: "{}", cause: "boom" },
          ...{ at: 2, replayedAt: null }
        })
      )
      yield* repo.markReplayed("d1", 3)
      assert.deepStrictEqual(
        (yield* repo.deadLetters({ limit: 10 })).map((d) => d.replayedAt),
        [3]
      )
      // PostgreSQL checks types on write: a column of another type stands for a table this version cannot read
      yield* sql.onDialectOrElse({
        pg: () => sql`ALTER TABLE events ALTER COLUMN at TYPE TEXT`,
        orElse: () => Effect.void
      })
      yield* sql`INSERT INTO events (id, topic, payload, at) VALUES ('e2', 't', '{}', 'soon')`
      const error = yield* unreadable("events.byTopic", repo.events({ topic: "t", limit: 10 }))
      assert.include(error.message, "storage: events.byTopic failed")
    }).pipe(Effect.provide(repos))
  )

  it.effect("keys: an unknown scope in the table is a StorageError of the read, and of the write", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const repo = yield* KeysRepo
      yield* repo.insert(key)
      assert.deepStrictEqual(yield* repo.find("k1"), Option.some(key))
      const [row] = yield* sql<{ scopes: string; limits: string }>`SELECT scopes, limits FROM api_keys`
      assert.deepStrictEqual(row, { scopes: "inference,admin", limits: JSON.stringify(key.limits) })
      assert.strictEqual(yield* repo.active, 1)
      yield* sql`UPDATE api_keys SET scopes = 'inference,root'`
      yield* unreadable("keys.find", repo.find("k1"))
      yield* unreadable("keys.list", repo.list)
      yield* unreadable("keys.insert", repo.insert({ ...key, id: "k2", scopes: ["root" as never] }))
    }).pipe(Effect.provide(repos))
  )

  it.effect(
    "memories: metadata that is not JSON is a StorageError; absent metadata is NULL and reads back absent",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const repo = yield* MemoriesRepo
        yield* repo.pin({ namespace: "n", model: "m", dim: 2 }, 0)
        const memory = {
          ...{ id: "m1", agent: "a", namespace: "n", text: "t", importance: 0.5 },
          ...{ createdAt: 1, lastUsedAt: 1, uses: 1, expiresAt: 9 }
        }
        yield* repo.insertMany([
          { ...memory, model: "m", vector: [0.5, -2] },
          { ...memory, id: "m2", metadata: { source: "doc" }, model: "m", vector: new Float32Array([1, 2]) }
        ])
        const columns = yield* sql<{
          metadata: string | null
          dim: number
        }>`SELECT metadata, dim FROM memories ORDER BY id`
        assert.deepStrictEqual(columns, [
          { metadata: null, dim: 2 },
          { metadata: JSON.stringify({ source: "doc" }), dim: 2 }
        ])
        assert.deepStrictEqual(yield* repo.byIds(["m1", "m2"]), [
          memory,
          { ...memory, id: "m2", metadata: { source: "doc" } }
        ])
        yield* sql`UPDATE memories SET metadata = 'not json' WHERE id = 'm2'`
        yield* unreadable("memories.byIds", repo.byIds(["m2"]))
      }).pipe(Effect.provide(repos))
  )

  it.effect("episodes: a status this version does not know is a StorageError of the read", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const repo = yield* EpisodesRepo
      const episode = {
        ...{ id: "ep", agent: "a", goal: "g", spec: { k: 1 }, status: "running" as const },
        ...{ createdAt: 1, updatedAt: 1, ticks: 0, tokens: 0 }
      }
      yield* repo.insertEpisode(episode)
      const [row] = yield* sql`SELECT ended_at, result, error FROM episodes`
      assert.deepStrictEqual(row, { ended_at: null, result: null, error: null })
      assert.deepStrictEqual(yield* repo.episode("ep"), Option.some(episode))
      yield* sql`UPDATE episodes SET status = 'paused'`
      yield* unreadable("episodes.get", repo.episode("ep"))
      yield* unreadable("episodes.list", repo.list({}))
    }).pipe(Effect.provide(repos))
  )
})
