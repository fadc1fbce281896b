/**
 * Vector memory: `memory_namespaces` pins each namespace to one embedding model and dimension (on its first write);
 * `memories` holds the memories, their vectors as float32 little-endian blobs.
 *
 * `expires_at` is the cleanup key (last use + ttl × (1 + importance), see VectorMemory.ts): the sweep deletes
 * rows past it and capacity eviction removes the smallest first, so both are index range scans.
 *
 * Indexes, one per query shape of MemoriesRepo:
 * - memories_by_namespace (namespace, agent, expires_at, id): the index rebuild (`namespace = ?`), eviction order
 *   within one agent's namespace (`namespace = ? AND agent = ? ORDER BY expires_at, id`, covering) and the counts
 *   per (namespace, agent);
 * - memories_by_expiry (expires_at): the TTL sweep (`expires_at <= ?`).
 *
 * Portable DDL: times are BIGINT milliseconds (PostgreSQL's INTEGER is 32-bit; SQLite reads BIGINT as INTEGER),
 * importance DOUBLE PRECISION (PostgreSQL's REAL is 32-bit; SQLite reads it as REAL); the vector column is the one
 * difference, BLOB on SQLite and BYTEA on PostgreSQL. The types were INTEGER and REAL before PostgreSQL: SQLite
 * stores the same values either way, so databases migrated then need nothing.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const bytes = sql.onDialectOrElse({ pg: () => sql.literal("BYTEA"), orElse: () => sql.literal("BLOB") })
  yield* sql`CREATE TABLE memory_namespaces (
    namespace TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    created_at BIGINT NOT NULL
  )`
  yield* sql`CREATE TABLE memories (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    namespace TEXT NOT NULL REFERENCES memory_namespaces (namespace),
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector ${bytes} NOT NULL,
    text TEXT NOT NULL,
    importance DOUBLE PRECISION NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    uses INTEGER NOT NULL,
    expires_at BIGINT NOT NULL,
    metadata TEXT
  )`
  yield* sql`CREATE INDEX memories_by_namespace ON memories (namespace, agent, expires_at, id)`
  yield* sql`CREATE INDEX memories_by_expiry ON memories (expires_at)`
})
