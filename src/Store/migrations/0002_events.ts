/**
 * Migration 2: the event bus's persistent event log and its dead letters.
 *
 * Portable SQL: payloads and causes are TEXT (JSON / a printed cause), times are BIGINT milliseconds, ids are
 * TEXT made by the bus. Every index is shaped after one query of `EventsRepo` (equality columns first, then the
 * ORDER BY columns, `id` last as the tie-break), so no query sorts or scans a table:
 * - events by topic and time            -> events_topic_at
 * - dead letters by handler (and time)  -> dead_letters_handler_at
 * - dead letters by topic (and time)    -> dead_letters_topic_at
 * - all dead letters by time            -> dead_letters_at
 * `event_id` is not a foreign key: the event log can be switched off while dead letters are always kept.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE events (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    at BIGINT NOT NULL
  )`
  yield* sql`CREATE INDEX events_topic_at ON events (topic, at, id)`
  yield* sql`CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY,
    handler TEXT NOT NULL,
    topic TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_at BIGINT NOT NULL,
    payload TEXT NOT NULL,
    cause TEXT NOT NULL,
    at BIGINT NOT NULL,
    replayed_at BIGINT
  )`
  yield* sql`CREATE INDEX dead_letters_handler_at ON dead_letters (handler, at, id)`
  yield* sql`CREATE INDEX dead_letters_topic_at ON dead_letters (topic, at, id)`
  yield* sql`CREATE INDEX dead_letters_at ON dead_letters (at, id)`
})
