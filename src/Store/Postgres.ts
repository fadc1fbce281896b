/**
 * PostgreSQL as Sluice's database (`SLUICE_DATABASE_URL=postgres://...`, docs/scale-out.md): several instances
 * share one database. @effect/sql-pg runs the same repositories and the same numbered migrations as SQLite.
 *
 * Choices:
 * - The driver (@effect/sql-pg, and pg under it) is imported when this layer is built, so a SQLite deployment and
 *   an app embedding the library never load it.
 * - BIGINT columns (times in ms, token counts, sizes) arrive as numeric strings, pg's default for int8, whose
 *   values may exceed 2^53. The row codecs decode a number or a numeric string (`Rows.Int64`); no pg type parser
 *   is installed, since that needs pg's own parsers for every other type (a direct pg dependency) and would
 *   change how rows read in an app that brings its own PgClient. The store tests run every repository on both.
 * - At start: connect within `connectTimeout` (a failure is a `StorageError` naming the URL without its password
 *   and the cause: connection refused, authentication failed, database does not exist), require server version
 *   13 or newer, then apply the migrations under PgMigrator's table lock (`LOCK TABLE effect_sql_migrations`), so
 *   instances starting together migrate once. Creating the migrations table itself is not locked: two instances
 *   starting on an empty database can race on it, so the migrator is run a second time if the first fails.
 * - The pool is pg's (10 connections per instance); a connection that cannot be made within `connectTimeout`
 *   fails the query, so a request never waits on a dead server longer than that.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import type { MigrationError } from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect, Layer, Redacted, Schedule } from "effect"
import { migrations } from "./migrations/index.js"
import { StorageError } from "./StorageError.js"

/** The oldest PostgreSQL major version Sluice runs on (the tests run 15). */
export const minimumVersion = 13

export interface Options {
  /** `postgres://user:password@host:port/database?sslmode=...` */
  readonly url: Redacted.Redacted
  /** How long to wait for a connection (default 5 s), at start and for every query after. */
  readonly connectTimeout?: Duration.DurationInput
}

/** The URL with its password (in the user part or a `password` parameter) replaced by `***`. */
export const redact = (url: string): string =>
  url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@").replace(/([?&]password=)[^&]*/i, "$1***")

/** A driver error as a person reads it: the message of every error inside (IPv4 and IPv6 both refused). */
export const reasonOf = (cause: unknown): string => {
  if (cause instanceof AggregateError && cause.errors.length > 0)
    return [...new Set(cause.errors.map(reasonOf))].join("; ")
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code
    const text = cause.message || cause.name
    return typeof code === "string" && !text.includes(code) ? `${text} (${code})` : text
  }
  return String(cause)
}

/** What to do about a failed connection, from the driver's error. */
export const adviceFor = (reason: string): string =>
  /ECONNREFUSED/.test(reason)
    ? "start PostgreSQL, or correct the host and port in SLUICE_DATABASE_URL"
    : /password authentication|no pg_hba\.conf entry|28P01|28000/.test(reason)
      ? "check the user and password in SLUICE_DATABASE_URL (and pg_hba.conf)"
      : /database .* does not exist|3D000/.test(reason)
        ? "create the database first (createdb <name>, or CREATE DATABASE <name>)"
        : /ENOTFOUND|EAI_AGAIN/.test(reason)
          ? "correct the host name in SLUICE_DATABASE_URL"
          : "check that PostgreSQL runs and that SLUICE_DATABASE_URL names it"

const cannotConnect = (url: Redacted.Redacted) => (error: { readonly cause?: unknown; readonly message: string }) =>
  new StorageError({
    operation: "connect",
    reason: `cannot connect to PostgreSQL at ${redact(Redacted.value(url))}: ${reasonOf(error.cause ?? error)}`,
    retryable: true,
    cause: error.cause
  })

/** The server's version: `num` as in `server_version_num` (150018 for 15.18), `text` as it names itself. */
export const serverVersion = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ num: string; text: string }>`SELECT current_setting('server_version_num') AS num,
      current_setting('server_version') AS text`,
    ([row]) => ({ num: Number(row?.num ?? 0), text: row?.text ?? "unknown" })
  )

const checkVersion = (url: Redacted.Redacted) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const version = yield* serverVersion(sql).pipe(Effect.mapError(cannotConnect(url)))
    if (version.num < minimumVersion * 10_000)
      return yield* new StorageError({
        operation: "connect",
        reason: `PostgreSQL ${version.text} at ${redact(Redacted.value(url))} is older than ${minimumVersion}`,
        retryable: false
      })
  })

const driver = Effect.promise(() =>
  Promise.all([import("@effect/sql-pg/PgClient"), import("@effect/sql-pg/PgMigrator")])
)

/**
 * A client of the database at `url`, not migrated (the startup checks read through it). The types name only
 * `SqlClient`, so the library's declarations never mention @effect/sql-pg (whose own need @types/pg).
 */
export const layerClient = (options: Options): Layer.Layer<SqlClient.SqlClient, StorageError> =>
  Layer.unwrapEffect(
    Effect.map(driver, ([PgClient]) =>
      PgClient.layer({
        url: options.url,
        applicationName: "sluice",
        connectTimeout: options.connectTimeout ?? Duration.seconds(5)
      }).pipe(Layer.mapError(cannotConnect(options.url)))
    )
  )

/** The database at `url`: connected, version checked, migrated. */
export const layer = (options: Options): Layer.Layer<SqlClient.SqlClient, StorageError | SqlError | MigrationError> =>
  Layer.unwrapEffect(
    Effect.map(driver, ([, PgMigrator]) =>
      PgMigrator.layer({ loader: migrations }).pipe(
        Layer.provide(NodeContext.layer),
        Layer.retry(Schedule.recurs(1)),
        Layer.provideMerge(Layer.effectDiscard(checkVersion(options.url))),
        Layer.provideMerge(layerClient(options))
      )
    )
  )
