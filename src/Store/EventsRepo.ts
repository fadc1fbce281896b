/**
 * The event bus's tables: the persistent event log (`events`) and the dead letters (`dead_letters`), created by
 * migration 2 with an index for every query here.
 *
 * Choices:
 * - Only portable SQL through `SqlClient`: JSON as TEXT, times as integer milliseconds, no SQLite functions.
 *   Millisecond columns are `Rows.Int64` (a PostgreSQL BIGINT arrives as a string), so a `layerPg` can reuse this
 *   repository unchanged.
 * - Rows are read and written as `Rows.ts` says (SqlSchema, one codec per table); a row that does not decode is a
 *   `StorageError` (the table holds something this version cannot read).
 * - Results are ordered oldest first, `id` breaking ties (bus ids sort in publish order within a millisecond);
 *   every query is bounded by a `limit`.
 * - The queries are built by `queries(sql)` so a test can `EXPLAIN QUERY PLAN` exactly what runs.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import { Effect, Schema } from "effect"
import * as Rows from "./Rows.js"

export const EventRow = Schema.Struct({
  id: Schema.String,
  topic: Schema.String,
  payload: Schema.String,
  at: Rows.Int64
})
export type EventRow = typeof EventRow.Type

export const DeadLetterRow = Schema.Struct({
  id: Schema.String,
  handler: Schema.String,
  topic: Schema.String,
  eventId: Rows.column("event_id", Schema.String),
  eventAt: Rows.column("event_at", Rows.Int64),
  payload: Schema.String,
  cause: Schema.String,
  at: Rows.Int64,
  replayedAt: Rows.column("replayed_at", Schema.NullOr(Rows.Int64))
})
export type DeadLetterRow = typeof DeadLetterRow.Type

/** Events of one topic with `since <= at < until`, oldest first. */
export const EventQuery = Schema.Struct({
  topic: Schema.String,
  since: Schema.optional(Schema.Number),
  until: Schema.optional(Schema.Number),
  limit: Schema.Number
})
export interface EventQuery extends Schema.Schema.Type<typeof EventQuery> {}

/** Dead letters, oldest first; `pending` keeps those not replayed yet. */
export const DeadLetterQuery = Schema.Struct({
  handler: Schema.optional(Schema.String),
  topic: Schema.optional(Schema.String),
  pending: Schema.optional(Schema.Boolean),
  limit: Schema.Number
})
export interface DeadLetterQuery extends Schema.Schema.Type<typeof DeadLetterQuery> {}

const deadLetterColumns = (sql: SqlClient.SqlClient) =>
  sql`id, handler, topic, event_id, event_at, payload, cause, at, replayed_at`

const defined = <A>(value: A | undefined, clause: (value: A) => Fragment): Array<Fragment> =>
  value === undefined ? [] : [clause(value)]

/** The read queries, as statements (run them, or wrap them in `EXPLAIN QUERY PLAN`). */
export const queries = (sql: SqlClient.SqlClient) => ({
  events: (q: EventQuery) =>
    sql`SELECT id, topic, payload, at FROM events WHERE ${sql.and([
      sql`topic = ${q.topic}`,
      ...defined(q.since, (since) => sql`at >= ${since}`),
      ...defined(q.until, (until) => sql`at < ${until}`)
    ])} ORDER BY at, id LIMIT ${q.limit}`,
  deadLetters: (q: DeadLetterQuery) =>
    sql`SELECT ${deadLetterColumns(sql)} FROM dead_letters WHERE ${sql.and([
      ...defined(q.handler, (handler) => sql`handler = ${handler}`),
      ...defined(q.topic, (topic) => sql`topic = ${topic}`),
      ...(q.pending === true ? [sql`replayed_at IS NULL`] : [])
    ])} ORDER BY at, id LIMIT ${q.limit}`,
  deadLetter: (id: string) => sql`SELECT ${deadLetterColumns(sql)} FROM dead_letters WHERE id = ${id}`
})

/** Reads and writes the event log and the dead letters. */
export class EventsRepo extends Effect.Service<EventsRepo>()("sluice/EventsRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const q = queries(sql)
    const markReplayed = Rows.void("deadLetters.markReplayed", {
      Request: Schema.Struct({ id: Schema.String, at: Schema.Number }),
      execute: ({ at, id }) => sql`UPDATE dead_letters SET replayed_at = ${at} WHERE id = ${id}`
    })
    return {
      insertEvent: Rows.void("events.insert", {
        Request: EventRow,
        execute: (row) => sql`INSERT INTO events ${sql.insert(row)}`
      }),
      events: Rows.findAll("events.byTopic", { Request: EventQuery, Result: EventRow, execute: q.events }),
      insertDeadLetter: Rows.void("deadLetters.insert", {
        Request: DeadLetterRow,
        execute: (row) => sql`INSERT INTO dead_letters ${sql.insert(row)}`
      }),
      deadLetters: Rows.findAll("deadLetters.list", {
        Request: DeadLetterQuery,
        Result: DeadLetterRow,
        execute: q.deadLetters
      }),
      deadLetter: Rows.findOne("deadLetters.get", {
        Request: Schema.String,
        Result: DeadLetterRow,
        execute: q.deadLetter
      }),
      markReplayed: (id: string, at: number) => markReplayed({ id, at })
    } as const
  })
}) {}
