/**
 * The database: @effect/sql over SQLite (better-sqlite3) in the data directory, WAL journal, a busy timeout,
 * foreign keys on, and the numbered migrations of `migrations/` applied at start.
 *
 * Portability: repositories use only the `SqlClient` interface and portable SQL (no SQLite-only functions in
 * queries; JSON is stored as TEXT and decoded with Schema; times are integer milliseconds), so a PostgreSQL layer
 * (`@effect/sql-pg` + the same migrations) can be added here without touching callers. The few dialect
 * differences (BLOB vs BYTEA, AUTOINCREMENT) sit in the migrations.
 *
 * Rows: every repository reads and writes through `SqlSchema` (wrapped in `Rows.ts`), not `Model`. The queries are
 * written by hand and shaped after their indexes (keyset pages, window functions, chunked `IN` lists), which
 * SqlSchema keeps as they are while `Model.makeRepository` writes its own; and the decoded values are the plain
 * domain structs (Domain/Episode.ts, the key and memory schemas) that the gateway and the CLI share, where a Model
 * class would turn them into class instances with insert/update/json variants no caller needs. A codec per table
 * maps columns to those structs (`Rows.column`, `Rows.nullable`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { migrations } from "./migrations/index.js"

export interface Options {
  /** The data directory; the database is `<dataDir>/sluice.db`. */
  readonly dataDir: string
  /** How long a writer waits for a lock before SQLITE_BUSY (default 5 s). */
  readonly busyTimeoutMs?: number
}

export const databaseFile = (dataDir: string) => join(dataDir, "sluice.db")

const pragmas = (busyTimeoutMs: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql.unsafe(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`),
      sql`PRAGMA foreign_keys = ON`,
      sql`PRAGMA synchronous = NORMAL`
    ])
  ).pipe(Effect.orDie)

const migrated = <E>(client: Layer.Layer<SqlClient.SqlClient | SqliteClient.SqliteClient, E>, busyTimeoutMs: number) =>
  Layer.effectDiscard(pragmas(busyTimeoutMs)).pipe(
    Layer.provideMerge(SqliteMigrator.layer({ loader: migrations }).pipe(Layer.provide(NodeContext.layer))),
    Layer.provideMerge(client)
  )

/** SQLite in the data directory (created if missing), migrated. */
export const layerSqlite = (options: Options) =>
  migrated(
    Layer.unwrapEffect(
      Effect.sync(() => {
        mkdirSync(options.dataDir, { recursive: true })
        return SqliteClient.layer({ filename: databaseFile(options.dataDir) })
      })
    ),
    options.busyTimeoutMs ?? 5_000
  )

/** An in-memory SQLite database, migrated: for tests. */
export const layerMemory = migrated(SqliteClient.layer({ filename: ":memory:", disableWAL: true }), 5_000)
