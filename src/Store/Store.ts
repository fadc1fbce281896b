/**
 * The database: @effect/sql over SQLite (better-sqlite3, the embedded default) or PostgreSQL (@effect/sql-pg, for
 * several instances sharing one database), chosen by one setting, `SLUICE_DATABASE_URL`, and migrated at start
 * with the numbered migrations of `migrations/`.
 *
 * - SQLite: `<dataDir>/sluice.db` unless the setting names another file (`file:<path>` or a plain path); WAL
 *   journal, a busy timeout, foreign keys on.
 * - PostgreSQL: `postgres://` or `postgresql://` (Postgres.ts says how it connects and migrates).
 *
 * Portability: repositories use only the `SqlClient` interface and portable SQL (no SQLite-only functions in
 * queries; JSON is stored as TEXT and decoded with Schema; times are BIGINT milliseconds; upserts are
 * `ON CONFLICT`), so both databases run the same repositories. The one DDL difference (BLOB vs BYTEA) is a
 * `sql.onDialectOrElse` in its migration.
 *
 * Rows: every repository reads and writes through `SqlSchema` (wrapped in `Rows.ts`), not `Model`. The queries are
 * written by hand and shaped after their indexes (keyset pages, window functions, chunked `IN` lists), which
 * SqlSchema keeps as they are while `Model.makeRepository` writes its own; and the decoded values are the plain
 * domain structs (Domain/Episode.ts, the key and memory schemas) that the gateway and the CLI share, where a Model
 * class would turn them into class instances with insert/update/json variants no caller needs. A codec per table
 * maps columns to those structs (`Rows.column`, `Rows.nullable`).
 */
import type { MigrationError } from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Config, ConfigError, Effect, Either, Layer, Option, Redacted } from "effect"
import { existsSync, mkdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { migrations } from "./migrations/index.js"
import * as Postgres from "./Postgres.js"
import type { StorageError } from "./StorageError.js"

export interface Options {
  /** The data directory; the database is `<dataDir>/sluice.db` unless `file` names another. */
  readonly dataDir: string
  /** The SQLite file (default `<dataDir>/sluice.db`). */
  readonly file?: string
  /** How long a writer waits for a lock before SQLITE_BUSY (default 5 s). */
  readonly busyTimeoutMs?: number
}

export const databaseFile = (dataDir: string) => join(dataDir, "sluice.db")

/** Where the database is: an SQLite file, or a PostgreSQL server. */
export type Location =
  { readonly _tag: "Sqlite"; readonly file: string } | { readonly _tag: "Postgres"; readonly url: Redacted.Redacted }

const postgresUrl = /^postgres(ql)?:\/\//i
const otherUrl = /^[a-z][a-z0-9+.-]*:\/\//i

/** Where `SLUICE_DATABASE_URL`'s value (none: the default) puts the database; a message when it names neither. */
export const locate = (dataDir: string, url: Option.Option<string>): Either.Either<Location, string> => {
  const value = Option.getOrElse(url, () => "").trim()
  if (value === "") return Either.right({ _tag: "Sqlite", file: databaseFile(dataDir) })
  if (postgresUrl.test(value)) return Either.right({ _tag: "Postgres", url: Redacted.make(value) })
  if (value.startsWith("file://")) {
    try {
      return Either.right({ _tag: "Sqlite", file: fileURLToPath(value) })
    } catch (e) {
      return Either.left(`${value} is not a file URL: ${e instanceof Error ? e.message : String(e)}`)
    }
  }
  if (value.startsWith("file:")) return Either.right({ _tag: "Sqlite", file: value.slice("file:".length) })
  if (otherUrl.test(value))
    return Either.left(`${Postgres.redact(value)}: expected postgres://..., postgresql://..., file:<path> or a path`)
  return Either.right({ _tag: "Sqlite", file: value })
}

/** `SLUICE_DATABASE_URL`, where the database is; absent means SQLite in `<dataDir>/sluice.db`. */
export const location = (dataDir: string): Effect.Effect<Location, ConfigError.ConfigError> =>
  Effect.flatMap(Config.option(Config.redacted("SLUICE_DATABASE_URL")), (url) =>
    Either.match(locate(dataDir, Option.map(url, Redacted.value)), {
      onLeft: (message) => Effect.fail(ConfigError.InvalidData(["SLUICE_DATABASE_URL"], message)),
      onRight: Effect.succeed
    })
  )

/** "sqlite" or "postgres". */
export const kind = (location: Location) => (location._tag === "Sqlite" ? "sqlite" : "postgres")

/** The file, or the URL without its password: for messages. */
export const describe = (location: Location): string =>
  location._tag === "Sqlite" ? location.file : Postgres.redact(Redacted.value(location.url))

/** Whether the database exists yet: an SQLite file may not (it is created at first use); a server always does. */
export const exists = (location: Location): boolean => location._tag === "Postgres" || existsSync(location.file)

/** Whether `table` exists, on either database. */
export const tableExists = (sql: SqlClient.SqlClient, table: string): Effect.Effect<boolean, unknown> =>
  sql.onDialectOrElse({
    pg: () =>
      Effect.map(sql<{ present: boolean }>`SELECT to_regclass(${table}) IS NOT NULL AS present`, ([row]) =>
        Boolean(row?.present)
      ),
    orElse: () =>
      Effect.map(
        sql<{ n: number }>`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ${table}`,
        ([row]) => Number(row?.n ?? 0) > 0
      )
  })

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

/** SQLite in the data directory (created if missing), or in `file`, migrated. */
export const layerSqlite = (options: Options) =>
  migrated(
    Layer.unwrapEffect(
      Effect.sync(() => {
        const file = options.file ?? databaseFile(options.dataDir)
        mkdirSync(dirname(file), { recursive: true })
        return SqliteClient.layer({ filename: file })
      })
    ),
    options.busyTimeoutMs ?? 5_000
  )

/** An in-memory SQLite database, migrated: for tests. */
export const layerMemory = migrated(SqliteClient.layer({ filename: ":memory:", disableWAL: true }), 5_000)

/** PostgreSQL at `url`: connected, version checked, migrated (Postgres.ts). */
export const layerPg = Postgres.layer

/** The database at `location`, migrated. */
export const layerAt = (
  location: Location,
  options: { readonly dataDir: string }
): Layer.Layer<SqlClient.SqlClient, SqlError | MigrationError | StorageError | ConfigError.ConfigError> =>
  location._tag === "Sqlite"
    ? layerSqlite({ dataDir: options.dataDir, file: location.file })
    : Postgres.layer({ url: location.url })

/**
 * The database `SLUICE_DATABASE_URL` chooses, migrated: what `sluice serve`, `agent`, `keys` and `archive` open.
 * Absent, it is SQLite in `<dataDir>/sluice.db`.
 */
export const layerFromConfig = (options: {
  readonly dataDir: string
}): Layer.Layer<SqlClient.SqlClient, SqlError | MigrationError | StorageError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(location(options.dataDir), (at) => layerAt(at, options)))

/** A connection to the database at `location` that changes nothing (SQLite read-only), not migrated: for checks. */
export const layerReader = (
  location: Location
): Layer.Layer<SqlClient.SqlClient, SqlError | StorageError | ConfigError.ConfigError> =>
  location._tag === "Sqlite"
    ? SqliteClient.layer({ filename: location.file, readonly: true, disableWAL: true })
    : Postgres.layerClient({ url: location.url })
