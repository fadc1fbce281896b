/**
 * Migration 5: the leases of running agent episodes (docs/agents.md, "Several instances"). One row per episode
 * that an instance runs: who runs it (`owner`, an instance id), until when (`expires_at`, BIGINT ms; renewed
 * while the episode ticks), the fencing token (`fence`, +1 at every takeover; a tick commits only while its
 * runner's owner and fence still match), and `cancel_requested` (0/1, set by an instance that does not run it).
 *
 * Portable SQL: TEXT, BIGINT and INTEGER only, no AUTOINCREMENT. Its own table, not columns of `episodes`: the
 * lease is renewed every few seconds and must not rewrite the episode's row. `episode_id` is not a foreign key:
 * a lease is deleted with the ending it belongs to, and the archive never has to know about leases.
 *
 * Indexes, one per query shape of LeasesRepo:
 * - the primary key on `episode_id`: acquire, renew, release, cancel, the fenced check of every tick;
 * - episode_leases_expires (expires_at): the takeover scanner's "leases expired before now".
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE episode_leases (
    episode_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    fence BIGINT NOT NULL,
    cancel_requested INTEGER NOT NULL
  )`
  yield* sql`CREATE INDEX episode_leases_expires ON episode_leases (expires_at)`
})
