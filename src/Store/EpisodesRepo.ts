/**
 * The SQL of episodes, ticks and the archive index: rows in, rows out, every failure a `StorageError`.
 * `Agent/Episodes.ts` and `Agent/Archive.ts` hold the rules; this module only reads and writes.
 *
 * Choices:
 * - Row codecs map snake_case columns to the camelCase domain with `Schema.fromKey`; JSON columns are TEXT
 *   decoded with `Schema.parseJson`; NULL decodes to an absent field and an absent field is written as NULL.
 * - `episodeColumns`/`tickColumns` are the canonical column order: rows are written with explicit columns in
 *   that order, and the archive files hold rows in it, so a restored row reads back identical.
 * - The statements of the hot queries are exported (`statements`) so a test can check their plans.
 * - Only portable SQL: RETURNING, window functions and `IN` work on SQLite >= 3.35 and PostgreSQL.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option, Schema } from "effect"
import type { ParseError } from "effect/ParseResult"
import { ArchiveEntry, BudgetUse, Episode, HotStatus, Tick, ToolCallRecord } from "../Domain/Episode.js"
import { Message } from "../Domain/Chat.js"
import { fromSqlError, StorageError } from "./StorageError.js"

export const episodeColumns = [
  ...["id", "agent", "goal", "spec", "status", "created_at", "updated_at", "ended_at"],
  ...["ticks", "tokens", "result", "error"]
] as const
export const tickColumns = [
  ...["episode_id", "n", "started_at", "duration_ms", "inputs", "recalled", "messages", "tool_calls"],
  ...["tokens", "budget", "outcome", "error"]
] as const

/** A row as the driver returns it. */
export type Row = Readonly<Record<string, unknown>>

const column = <K extends string, S extends Schema.Schema.Any>(key: K, schema: S) =>
  Schema.propertySignature(schema).pipe(Schema.fromKey(key))
const nullable = <K extends string, S extends Schema.Schema.Any>(key: K, schema: S) =>
  Schema.optionalWith(schema, { exact: true, nullable: true }).pipe(Schema.fromKey(key))

const EpisodeRow: Schema.Schema<Episode, any> = Schema.Struct({
  id: Schema.String,
  agent: Schema.String,
  goal: Schema.String,
  spec: Schema.parseJson(),
  status: HotStatus,
  createdAt: column("created_at", Schema.Number),
  updatedAt: column("updated_at", Schema.Number),
  endedAt: nullable("ended_at", Schema.Number),
  ticks: Schema.Number,
  tokens: Schema.Number,
  result: nullable("result", Schema.String),
  error: nullable("error", Schema.String)
})

const TickRow: Schema.Schema<Tick, any> = Schema.Struct({
  episodeId: column("episode_id", Schema.String),
  n: Schema.Number,
  startedAt: column("started_at", Schema.Number),
  durationMs: column("duration_ms", Schema.Number),
  inputs: Schema.parseJson(),
  recalled: Schema.parseJson(Schema.Array(Schema.String)),
  messages: Schema.parseJson(Schema.Array(Message)),
  toolCalls: column("tool_calls", Schema.parseJson(Schema.Array(ToolCallRecord))),
  tokens: Schema.Number,
  budget: nullable("budget", Schema.parseJson(BudgetUse)),
  outcome: Tick.fields.outcome,
  error: nullable("error", Schema.String)
})

const EntryRow: Schema.Schema<ArchiveEntry, any> = Schema.Struct({
  episodeId: column("episode_id", Schema.String),
  agent: Schema.String,
  status: Schema.optionalWith(Schema.Literal("archived"), { exact: true, default: () => "archived" as const }),
  finalStatus: column("final_status", HotStatus),
  createdAt: column("created_at", Schema.Number),
  updatedAt: column("updated_at", Schema.Number),
  file: Schema.String,
  sha256: Schema.String,
  bytes: Schema.Number,
  tickCount: column("tick_count", Schema.Number),
  archivedAt: column("archived_at", Schema.Number)
})

/** `record`'s values in `columns` order, absent ones as NULL. */
export const canonical = (columns: ReadonlyArray<string>, record: Row): Row =>
  Object.fromEntries(columns.map((c) => [c, record[c] ?? null]))

const toStorage = (operation: string) => (error: SqlError | ParseError) =>
  error._tag === "ParseError"
    ? new StorageError({ operation, reason: `unreadable row: ${error.message}`, retryable: false, cause: error })
    : fromSqlError(operation)(error)

/** Maps SQL and decoding failures to StorageError and names the span after the operation. */
const run =
  (operation: string) =>
  <A, R>(effect: Effect.Effect<A, SqlError | ParseError, R>): Effect.Effect<A, StorageError, R> =>
    effect.pipe(Effect.mapError(toStorage(operation)), Effect.withSpan(`Store.${operation}`))

/** Filters of `list`; times bound `created_at` (since inclusive, until exclusive). */
export interface ListQuery {
  readonly agent?: string | undefined
  readonly status?: HotStatus | undefined
  readonly since?: number | undefined
  readonly until?: number | undefined
  readonly limit?: number | undefined
}

/** What makes an ended episode due for the archive: older than `before`, or beyond the newest `keep` per agent. */
export interface DuePolicy {
  readonly before?: number | undefined
  readonly keepPerAgent?: number | undefined
  readonly limit: number
}

/** An episode due for the archive. */
export interface Due {
  readonly id: string
  readonly agent: string
  readonly status: HotStatus
  readonly ticks: number
  readonly updated_at: number
}

const ended = ["completed", "failed", "interrupted"] as const

/** The statements of the queries; exported so their plans can be checked. */
export const statements = (sql: SqlClient.SqlClient) => ({
  list: (q: ListQuery) => {
    const where = [
      ...(q.agent === undefined ? [] : [sql`agent = ${q.agent}`]),
      ...(q.status === undefined ? [] : [sql`status = ${q.status}`]),
      ...(q.since === undefined ? [] : [sql`created_at >= ${q.since}`]),
      ...(q.until === undefined ? [] : [sql`created_at < ${q.until}`])
    ]
    return sql<Row>`SELECT * FROM episodes WHERE ${sql.and(where)} ORDER BY created_at DESC LIMIT ${q.limit ?? 100}`
  },
  episode: (id: string) => sql<Row>`SELECT * FROM episodes WHERE id = ${id}`,
  ticks: (id: string) => sql<Row>`SELECT * FROM ticks WHERE episode_id = ${id} ORDER BY n`,
  lastTick: (id: string) => sql<{ n: number | null }>`SELECT MAX(n) AS n FROM ticks WHERE episode_id = ${id}`,
  due: (p: DuePolicy) => {
    const rules = [
      ...(p.before === undefined ? [] : [sql`updated_at < ${p.before}`]),
      ...(p.keepPerAgent === undefined ? [] : [sql`recency > ${p.keepPerAgent}`])
    ]
    return sql<Due>`SELECT id, agent, status, ticks, updated_at FROM (
      SELECT id, agent, status, ticks, updated_at,
        ROW_NUMBER() OVER (PARTITION BY agent ORDER BY updated_at DESC, id DESC) AS recency
      FROM episodes WHERE status IN ${sql.in(ended)}
    ) ranked WHERE ${sql.or(rules)} ORDER BY updated_at, id LIMIT ${p.limit}`
  },
  entries: (agent: string | undefined, limit: number) =>
    agent === undefined
      ? sql<Row>`SELECT * FROM archive_index ORDER BY archived_at DESC LIMIT ${limit}`
      : sql<Row>`SELECT * FROM archive_index WHERE agent = ${agent} ORDER BY archived_at DESC LIMIT ${limit}`
})

const insertRow = (sql: SqlClient.SqlClient, table: "episodes" | "ticks" | "archive_index", row: Row) =>
  sql`INSERT INTO ${sql(table)} ${sql.insert(row as Record<string, unknown>)}`

export class EpisodesRepo extends Effect.Service<EpisodesRepo>()("sluice/EpisodesRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const q = statements(sql)
    const decodeEpisode = Schema.decodeUnknown(EpisodeRow)
    const decodeEpisodes = Schema.decodeUnknown(Schema.Array(EpisodeRow))
    const decodeTicks = Schema.decodeUnknown(Schema.Array(TickRow))
    const decodeEntries = Schema.decodeUnknown(Schema.Array(EntryRow))
    const firstEpisode = (rows: ReadonlyArray<Row>) =>
      rows[0] === undefined ? Effect.succeedNone : Effect.asSome(decodeEpisode(rows[0]))

    const rows = {
      episode: (id: string) => run("episodes.rawEpisode")(Effect.map(q.episode(id), (r) => Option.fromNullable(r[0]))),
      ticks: (id: string) => run("episodes.rawTicks")(q.ticks(id)),
      /** Inserts rows as they were read (canonical columns), ticks in chunks. */
      insert: (episode: Row, ticks: ReadonlyArray<Row>) =>
        run("episodes.insertRows")(
          Effect.zipRight(
            insertRow(sql, "episodes", canonical(episodeColumns, episode)),
            Effect.forEach(
              chunks(ticks, 50),
              (chunk) =>
                sql`INSERT INTO ticks ${sql.insert(chunk.map((t) => canonical(tickColumns, t) as Record<string, unknown>))}`
            )
          )
        ),
      /**
       * Deletes the episode and its ticks if it ended and is unchanged since `updatedAt`; false (with the ticks
       * deleted) otherwise, so run it in a transaction and roll back on false.
       */
      delete: (id: string, updatedAt: number) =>
        run("episodes.deleteRows")(
          Effect.zipRight(
            sql`DELETE FROM ticks WHERE episode_id = ${id}`,
            Effect.map(
              sql`DELETE FROM episodes WHERE id = ${id} AND updated_at = ${updatedAt}
                AND status IN ${sql.in(ended)} RETURNING id`,
              (gone) => gone.length > 0
            )
          )
        )
    }

    return {
      /** Runs `effect` in one transaction; an SqlError of begin/commit becomes a StorageError. */
      transaction:
        (operation: string) =>
        <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          sql
            .withTransaction(effect)
            .pipe(Effect.catchTag("SqlError", (e) => Effect.fail(fromSqlError(operation)(e as SqlError)))),
      insertEpisode: (episode: Episode) =>
        run("episodes.insert")(
          Effect.flatMap(Schema.encode(EpisodeRow)(episode), (row) =>
            insertRow(sql, "episodes", canonical(episodeColumns, row))
          )
        ),
      insertTick: (tick: Tick) =>
        run("ticks.insert")(
          Effect.flatMap(Schema.encode(TickRow)(tick), (row) => insertRow(sql, "ticks", canonical(tickColumns, row)))
        ),
      episode: (id: string) => run("episodes.get")(Effect.flatMap(q.episode(id), firstEpisode)),
      list: (query: ListQuery) => run("episodes.list")(Effect.flatMap(q.list(query), decodeEpisodes)),
      ticks: (id: string) => run("ticks.list")(Effect.flatMap(q.ticks(id), decodeTicks)),
      lastTick: (id: string) =>
        run("ticks.last")(Effect.map(q.lastTick(id), (r) => Option.fromNullable(r[0]?.n ?? undefined))),
      /** Counts tick `n` on a running episode whose last tick is n - 1. */
      advance: (id: string, n: number, tokens: number, now: number) =>
        run("episodes.advance")(
          Effect.flatMap(
            sql<Row>`UPDATE episodes SET ticks = ${n}, tokens = tokens + ${tokens}, updated_at = ${now}
              WHERE id = ${id} AND status = 'running' AND ticks = ${n - 1} RETURNING *`,
            firstEpisode
          )
        ),
      /** Moves an episode whose status is one of `from` to `status`; none when it is not. */
      setStatus: (id: string, from: ReadonlyArray<HotStatus>, set: StatusChange) =>
        run("episodes.setStatus")(
          Effect.flatMap(
            sql<Row>`UPDATE episodes SET status = ${set.status}, updated_at = ${set.now}, ended_at = ${set.endedAt},
              result = ${set.result ?? null}, error = ${set.error ?? null}
              WHERE id = ${id} AND status IN ${sql.in(from)} RETURNING *`,
            firstEpisode
          )
        ),
      rows,
      due: (policy: DuePolicy) =>
        policy.before === undefined && policy.keepPerAgent === undefined
          ? Effect.succeed<ReadonlyArray<Due>>([])
          : run("episodes.due")(q.due(policy)),
      entry: (id: string) =>
        run("archive.entry")(
          Effect.flatMap(sql<Row>`SELECT * FROM archive_index WHERE episode_id = ${id}`, (r) =>
            Effect.map(decodeEntries(r), (all) => Option.fromNullable(all[0]))
          )
        ),
      entries: (agent: string | undefined, limit: number) =>
        run("archive.entries")(Effect.flatMap(q.entries(agent, limit), decodeEntries)),
      insertEntry: (entry: ArchiveEntry) =>
        run("archive.insertEntry")(
          Effect.flatMap(Schema.encode(EntryRow)(entry), ({ status: _, ...row }) =>
            insertRow(sql, "archive_index", row)
          )
        ),
      deleteEntry: (id: string) => run("archive.deleteEntry")(sql`DELETE FROM archive_index WHERE episode_id = ${id}`)
    } as const
  })
}) {}

/** A status change: the new status, when it happened, and the end time, result and error to record. */
export interface StatusChange {
  readonly status: HotStatus
  readonly now: number
  readonly endedAt: number | null
  readonly result?: string | undefined
  readonly error?: string | undefined
}

const chunks = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))
