/**
 * The SQL of episodes, ticks and the archive index: rows in, rows out, every failure a `StorageError`.
 * `Agent/Episodes.ts` and `Agent/Archive.ts` hold the rules; this module only reads and writes.
 *
 * Choices:
 * - Rows are read and written as `Rows.ts` says (SqlSchema, one codec per table): the codecs map snake_case columns
 *   to the camelCase domain (`Rows.column`); JSON columns are TEXT decoded with `Schema.parseJson`; NULL decodes to
 *   an absent field and an absent field is written as NULL (`Rows.nullable`); BIGINT columns are `Rows.Int64`.
 * - `rows` reads and writes rows as they are (the archive's copies), checked only to be rows, BIGINT columns as
 *   numbers (PostgreSQL returns them as strings), so an archive file is the same whichever database wrote it.
 * - `episodeColumns`/`tickColumns` are the canonical column order: rows are written with explicit columns in
 *   that order, and the archive files hold rows in it, so a restored row reads back identical.
 * - The statements of the hot queries are exported (`statements`) so a test can check their plans.
 * - Only portable SQL: RETURNING, window functions and `IN` work on SQLite >= 3.35 and PostgreSQL.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Array as Arr, Effect, Option, Schema } from "effect"
import { ArchiveEntry, BudgetUse, Episode, HotStatus, Tick, ToolCallRecord } from "../Domain/Episode.js"
import { Message } from "../Domain/Chat.js"
import * as Rows from "./Rows.js"

export const episodeColumns = [
  ...["id", "agent", "goal", "spec", "status", "created_at", "updated_at", "ended_at"],
  ...["ticks", "tokens", "result", "error"]
] as const
export const tickColumns = [
  ...["episode_id", "n", "started_at", "duration_ms", "inputs", "recalled", "messages", "tool_calls"],
  ...["tokens", "budget", "outcome", "error"]
] as const

/** A row as the driver returns it. */
const Row = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type Row = typeof Row.Type

/** The BIGINT columns of episodes and ticks, which PostgreSQL returns as numeric strings. */
const bigints = ["created_at", "updated_at", "ended_at", "tokens", "started_at", "duration_ms"] as const

/** A raw row with its BIGINT columns as numbers, so rows (and archive files) read the same on both databases. */
const RawRow = Schema.transform(Row, Schema.typeSchema(Row), {
  strict: true,
  decode: (row) => {
    const out = { ...row }
    for (const c of bigints) if (typeof out[c] === "string") out[c] = Number(out[c])
    return out
  },
  encode: (row) => row
})

const EpisodeRow: Schema.Schema<Episode, any> = Schema.Struct({
  id: Schema.String,
  agent: Schema.String,
  goal: Schema.String,
  spec: Schema.parseJson(),
  status: HotStatus,
  createdAt: Rows.column("created_at", Rows.Int64),
  updatedAt: Rows.column("updated_at", Rows.Int64),
  endedAt: Rows.nullable("ended_at", Rows.Int64),
  ticks: Schema.Number,
  tokens: Rows.Int64,
  result: Rows.nullable("result", Schema.String),
  error: Rows.nullable("error", Schema.String)
})

const TickRow: Schema.Schema<Tick, any> = Schema.Struct({
  episodeId: Rows.column("episode_id", Schema.String),
  n: Schema.Number,
  startedAt: Rows.column("started_at", Rows.Int64),
  durationMs: Rows.column("duration_ms", Rows.Int64),
  inputs: Schema.parseJson(),
  recalled: Schema.parseJson(Schema.Array(Schema.String)),
  messages: Schema.parseJson(Schema.Array(Message)),
  toolCalls: Rows.column("tool_calls", Schema.parseJson(Schema.Array(ToolCallRecord))),
  tokens: Rows.Int64,
  budget: Rows.nullable("budget", Schema.parseJson(BudgetUse)),
  outcome: Tick.fields.outcome,
  error: Rows.nullable("error", Schema.String)
})

const EntryRow: Schema.Schema<ArchiveEntry, any> = Schema.Struct({
  episodeId: Rows.column("episode_id", Schema.String),
  agent: Schema.String,
  status: Schema.optionalWith(Schema.Literal("archived"), { exact: true, default: () => "archived" as const }),
  finalStatus: Rows.column("final_status", HotStatus),
  createdAt: Rows.column("created_at", Rows.Int64),
  updatedAt: Rows.column("updated_at", Rows.Int64),
  file: Schema.String,
  sha256: Schema.String,
  bytes: Rows.Int64,
  tickCount: Rows.column("tick_count", Schema.Number),
  archivedAt: Rows.column("archived_at", Rows.Int64)
})

/** `record`'s values in `columns` order, absent ones as NULL. */
export const canonical = (columns: ReadonlyArray<string>, record: Row): Row =>
  Object.fromEntries(columns.map((c) => [c, record[c] ?? null]))

/** Filters of `list`; times bound `created_at` (since inclusive, until exclusive). */
export const ListQuery = Schema.Struct({
  agent: Schema.optional(Schema.String),
  status: Schema.optional(HotStatus),
  since: Schema.optional(Schema.Number),
  until: Schema.optional(Schema.Number),
  limit: Schema.optional(Schema.Number)
})
export interface ListQuery extends Schema.Schema.Type<typeof ListQuery> {}

/** What makes an ended episode due for the archive: older than `before`, or beyond the newest `keep` per agent. */
export const DuePolicy = Schema.Struct({
  before: Schema.optional(Schema.Number),
  keepPerAgent: Schema.optional(Schema.Number),
  limit: Schema.Number
})
export interface DuePolicy extends Schema.Schema.Type<typeof DuePolicy> {}

/** An episode due for the archive (the columns `due` selects, under their names). */
export const Due = Schema.Struct({
  id: Schema.String,
  agent: Schema.String,
  status: HotStatus,
  ticks: Schema.Number,
  updated_at: Rows.Int64
})
export interface Due extends Schema.Schema.Type<typeof Due> {}

/** A status change: the new status, when it happened, and the end time, result and error to record. */
export const StatusChange = Schema.Struct({
  status: HotStatus,
  now: Schema.Number,
  endedAt: Schema.NullOr(Schema.Number),
  result: Schema.optional(Schema.String),
  error: Schema.optional(Schema.String)
})
export interface StatusChange extends Schema.Schema.Type<typeof StatusChange> {}

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

const Returned = Schema.Struct({ id: Schema.String })

export class EpisodesRepo extends Effect.Service<EpisodesRepo>()("sluice/EpisodesRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const q = statements(sql)

    const insertRows = Rows.void("episodes.insertRows", {
      Request: Schema.Struct({ episode: Row, ticks: Schema.Array(Row) }),
      execute: ({ episode, ticks }) =>
        Effect.zipRight(
          insertRow(sql, "episodes", canonical(episodeColumns, episode)),
          Effect.forEach(
            Arr.chunksOf(ticks, 50),
            (chunk) =>
              sql`INSERT INTO ticks ${sql.insert(chunk.map((t) => canonical(tickColumns, t) as Record<string, unknown>))}`
          )
        )
    })
    const deleteRows = Rows.findAll("episodes.deleteRows", {
      Request: Schema.Struct({ id: Schema.String, updatedAt: Schema.Number }),
      Result: Returned,
      execute: ({ id, updatedAt }) =>
        Effect.zipRight(
          sql`DELETE FROM ticks WHERE episode_id = ${id}`,
          sql`DELETE FROM episodes WHERE id = ${id} AND updated_at = ${updatedAt}
            AND status IN ${sql.in(ended)} RETURNING id`
        )
    })
    const rows = {
      episode: Rows.findOne("episodes.rawEpisode", { Request: Schema.String, Result: RawRow, execute: q.episode }),
      ticks: Rows.findAll("episodes.rawTicks", { Request: Schema.String, Result: RawRow, execute: q.ticks }),
      /** Inserts rows as they were read (canonical columns), ticks in chunks. */
      insert: (episode: Row, ticks: ReadonlyArray<Row>) => insertRows({ episode, ticks }),
      /**
       * Deletes the episode and its ticks if it ended and is unchanged since `updatedAt`; false (with the ticks
       * deleted) otherwise, so run it in a transaction and roll back on false.
       */
      delete: (id: string, updatedAt: number) => Effect.map(deleteRows({ id, updatedAt }), (gone) => gone.length > 0)
    }
    const advance = Rows.findOne("episodes.advance", {
      Request: Schema.Struct({ id: Schema.String, n: Schema.Number, tokens: Schema.Number, now: Schema.Number }),
      Result: EpisodeRow,
      execute: ({ id, n, now, tokens }) =>
        sql`UPDATE episodes SET ticks = ${n}, tokens = tokens + ${tokens}, updated_at = ${now}
          WHERE id = ${id} AND status = 'running' AND ticks = ${n - 1} RETURNING *`
    })
    const setStatus = Rows.findOne("episodes.setStatus", {
      Request: Schema.Struct({ id: Schema.String, from: Schema.Array(HotStatus), set: StatusChange }),
      Result: EpisodeRow,
      execute: ({ from, id, set }) =>
        sql`UPDATE episodes SET status = ${set.status}, updated_at = ${set.now}, ended_at = ${set.endedAt},
          result = ${set.result ?? null}, error = ${set.error ?? null}
          WHERE id = ${id} AND status IN ${sql.in(from)} RETURNING *`
    })
    const lastTick = Rows.findOne("ticks.last", {
      Request: Schema.String,
      Result: Schema.Struct({ n: Schema.NullOr(Schema.Number) }),
      execute: q.lastTick
    })
    const due = Rows.findAll("episodes.due", { Request: DuePolicy, Result: Due, execute: q.due })
    const entries = Rows.findAll("archive.entries", {
      Request: Schema.Struct({ agent: Schema.UndefinedOr(Schema.String), limit: Schema.Number }),
      Result: EntryRow,
      execute: ({ agent, limit }) => q.entries(agent, limit)
    })

    return {
      /** Runs `effect` in one transaction; an SqlError of begin/commit becomes a StorageError. */
      transaction: (operation: string) => Rows.transaction(sql, operation),
      insertEpisode: Rows.void("episodes.insert", {
        Request: EpisodeRow,
        execute: (row) => insertRow(sql, "episodes", canonical(episodeColumns, row))
      }),
      insertTick: Rows.void("ticks.insert", {
        Request: TickRow,
        execute: (row) => insertRow(sql, "ticks", canonical(tickColumns, row))
      }),
      episode: Rows.findOne("episodes.get", { Request: Schema.String, Result: EpisodeRow, execute: q.episode }),
      list: Rows.findAll("episodes.list", { Request: ListQuery, Result: EpisodeRow, execute: q.list }),
      ticks: Rows.findAll("ticks.list", { Request: Schema.String, Result: TickRow, execute: q.ticks }),
      lastTick: (id: string) =>
        Effect.map(
          lastTick(id),
          Option.flatMap((row) => Option.fromNullable(row.n))
        ),
      /** Counts tick `n` on a running episode whose last tick is n - 1. */
      advance: (id: string, n: number, tokens: number, now: number) => advance({ id, n, tokens, now }),
      /** Moves an episode whose status is one of `from` to `status`; none when it is not. */
      setStatus: (id: string, from: ReadonlyArray<HotStatus>, set: StatusChange) => setStatus({ id, from, set }),
      rows,
      due: (policy: DuePolicy) =>
        policy.before === undefined && policy.keepPerAgent === undefined
          ? Effect.succeed<ReadonlyArray<Due>>([])
          : due(policy),
      entry: Rows.findOne("archive.entry", {
        Request: Schema.String,
        Result: EntryRow,
        execute: (id) => sql`SELECT * FROM archive_index WHERE episode_id = ${id}`
      }),
      entries: (agent: string | undefined, limit: number) => entries({ agent, limit }),
      insertEntry: Rows.void("archive.insertEntry", {
        Request: EntryRow,
        execute: ({ status: _, ...row }) => insertRow(sql, "archive_index", row)
      }),
      deleteEntry: Rows.void("archive.deleteEntry", {
        Request: Schema.String,
        execute: (id) => sql`DELETE FROM archive_index WHERE episode_id = ${id}`
      })
    } as const
  })
}) {}
