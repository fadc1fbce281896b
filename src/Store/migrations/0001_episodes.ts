/**
 * Episodes, their ticks, and the index of archived episodes, with an index for every query of
 * `Store/EpisodesRepo.ts` (checked with EXPLAIN QUERY PLAN in test/Agent/EpisodesIndexes.test.ts).
 *
 * Portable DDL: TEXT, INTEGER and BIGINT only (times in ms need 64 bits on PostgreSQL), JSON as TEXT,
 * no AUTOINCREMENT. The ticks primary key (episode_id, n) is the "one tick per number" constraint.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE episodes (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    goal TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    ended_at BIGINT,
    ticks INTEGER NOT NULL,
    tokens BIGINT NOT NULL,
    result TEXT,
    error TEXT
  )`
  yield* sql`CREATE INDEX episodes_agent_status_created ON episodes (agent, status, created_at)`
  yield* sql`CREATE INDEX episodes_status_updated ON episodes (status, updated_at)`
  yield* sql`CREATE INDEX episodes_created ON episodes (created_at)`
  yield* sql`CREATE TABLE ticks (
    episode_id TEXT NOT NULL REFERENCES episodes (id),
    n INTEGER NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    inputs TEXT NOT NULL,
    recalled TEXT NOT NULL,
    messages TEXT NOT NULL,
    tool_calls TEXT NOT NULL,
    tokens BIGINT NOT NULL,
    budget TEXT,
    outcome TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (episode_id, n)
  )`
  yield* sql`CREATE TABLE archive_index (
    episode_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    final_status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    tick_count INTEGER NOT NULL,
    archived_at BIGINT NOT NULL
  )`
  yield* sql`CREATE INDEX archive_index_agent_archived ON archive_index (agent, archived_at)`
  yield* sql`CREATE INDEX archive_index_archived ON archive_index (archived_at)`
})
