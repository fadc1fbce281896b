/**
 * Migration 6: what lets each instance's in-memory index of a namespace follow the other instances' writes
 * (Store/MemoriesChanges.ts, Agent/VectorMemoryIndexer.ts).
 *
 * - `memory_namespaces.version`: +1 by every transaction that inserts memories into the namespace; the update holds
 *   the namespace's row until the commit, so versions are given in commit order.
 * - `memory_namespaces.removed`: memories ever deleted from the namespace (a counter: it only grows).
 * - `memories.seq`: the namespace's version of the transaction that inserted the row; rows stored before this
 *   migration have 0, and every index loaded from the table has them.
 * - memories_by_seq (namespace, seq, id): "rows inserted after version v", read in pages along it.
 *
 * Portable: BIGINT columns with a constant default (SQLite and PostgreSQL add them without rewriting rows).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE memory_namespaces ADD COLUMN version BIGINT NOT NULL DEFAULT 0`
  yield* sql`ALTER TABLE memory_namespaces ADD COLUMN removed BIGINT NOT NULL DEFAULT 0`
  yield* sql`ALTER TABLE memories ADD COLUMN seq BIGINT NOT NULL DEFAULT 0`
  yield* sql`CREATE INDEX memories_by_seq ON memories (namespace, seq, id)`
})
