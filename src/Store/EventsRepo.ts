/**
 * The event bus's tables: the persistent event log (`events`) and the dead letters (`dead_letters`), created by
 * migration 2 with an index for every query here.
 *
 * Choices:
 * - Only portable SQL through `SqlClient`: JSON as TEXT, times as integer milliseconds, no SQLite functions. Millisecond columns decode from a number or a numeric string (a PostgreSQL BIGINT arrives
 *   as a string), so a `layerPg` can reuse this repository unchanged.
 * - Results are ordered oldest first, `id` breaking ties (bus ids sort in publish order within a millisecond);
 *   every query is bounded by a `limit`.
 * - The queries are built by `queries(sql)` so a test can `EXPLAIN QUERY PLAN` exactly what runs.
 * - Rows that do not decode are a `StorageError` (the table holds something this version cannot read).
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import { Effect, Option, ParseResult, Schema } from "effect"
import { StorageError, storage } from "./StorageError.js"

const Millis = Schema.Union(Schema.Number, Schema.NumberFromString)

export const EventRow = Schema.Struct({ id: Schema.String, topic: Schema.String, payload: Schema.String, at: Millis })
export type EventRow = typeof EventRow.Type

export const DeadLetterRow = Schema.Struct({
  id: Schema.String,
  handler: Schema.String,
  topic: Schema.String,
  eventId: Schema.String,
  eventAt: Millis,
  payload: Schema.String,
  cause: Schema.String,
  at: Millis,
  replayedAt: Schema.NullOr(Millis)
})
export type DeadLetterRow = typeof DeadLetterRow.Type

/** Events of one topic with `since <= at < until`, oldest first. */
export interface EventQuery {
  readonly topic: string
  readonly since?: number | undefined
  readonly until?: number | undefined
  readonly limit: number
}

/** Dead letters, oldest first; `pending` keeps those not replayed yet. */
export interface DeadLetterQuery {
  readonly handler?: string | undefined
  readonly topic?: string | undefined
  readonly pending?: boolean | undefined
  readonly limit: number
}

const deadLetterColumns = (sql: SqlClient.SqlClient) =>
  sql`id, handler, topic, event_id AS ${sql("eventId")}, event_at AS ${sql("eventAt")}, payload, cause, at,
    replayed_at AS ${sql("replayedAt")}`

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

const decodeRows =
  <A, I>(operation: string, row: Schema.Schema<A, I>) =>
  (effect: Effect.Effect<ReadonlyArray<unknown>, SqlError>): Effect.Effect<ReadonlyArray<A>, StorageError> =>
    storage(operation)(effect).pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(row))),
      Effect.catchTag("ParseError", (error) =>
        Effect.fail(
          new StorageError({ operation, reason: ParseResult.TreeFormatter.formatErrorSync(error), retryable: false })
        )
      )
    )

/** Reads and writes the event log and the dead letters. */
export class EventsRepo extends Effect.Service<EventsRepo>()("sluice/EventsRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const q = queries(sql)
    return {
      insertEvent: (row: EventRow): Effect.Effect<void, StorageError> =>
        storage("events.insert")(sql`INSERT INTO events ${sql.insert(row)}`),
      events: (query: EventQuery) => decodeRows("events.byTopic", EventRow)(q.events(query)),
      insertDeadLetter: (row: DeadLetterRow): Effect.Effect<void, StorageError> =>
        storage("deadLetters.insert")(
          sql`INSERT INTO dead_letters ${sql.insert({
            id: row.id,
            handler: row.handler,
            topic: row.topic,
            event_id: row.eventId,
            event_at: row.eventAt,
            payload: row.payload,
            cause: row.cause,
            at: row.at,
            replayed_at: row.replayedAt
          })}`
        ),
      deadLetters: (query: DeadLetterQuery) => decodeRows("deadLetters.list", DeadLetterRow)(q.deadLetters(query)),
      deadLetter: (id: string): Effect.Effect<Option.Option<DeadLetterRow>, StorageError> =>
        decodeRows(
          "deadLetters.get",
          DeadLetterRow
        )(q.deadLetter(id)).pipe(Effect.map((rows) => Option.fromNullable(rows[0]))),
      markReplayed: (id: string, at: number): Effect.Effect<void, StorageError> =>
        storage("deadLetters.markReplayed")(sql`UPDATE dead_letters SET replayed_at = ${at} WHERE id = ${id}`)
    } as const
  })
}) {}
