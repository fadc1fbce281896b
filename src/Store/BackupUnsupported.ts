/**
 * `sluice backup` and `sluice restore` with PostgreSQL (`SLUICE_DATABASE_URL=postgres://...`): they copy and
 * replace SQLite files, so they refuse with `BackupUnsupported`, whose message names the pg_dump and pg_restore
 * commands to run instead (docs/production-deployment.md, "Backups"). The server's own tools take a consistent
 * dump while Sluice serves; copying a running server's files is not a backup, and pretending would be worse than
 * refusing.
 */
import { Effect, Schema } from "effect"
import * as Store from "./Store.js"

/** `sluice backup`/`restore` with PostgreSQL: they copy SQLite files; the message says what to run instead. */
export class BackupUnsupported extends Schema.TaggedError<BackupUnsupported>()("BackupUnsupported", {
  operation: Schema.Literal("backup", "restore"),
  /** The database URL without its password. */
  database: Schema.String
}) {
  override get message() {
    return this.operation === "backup"
      ? `sluice backup copies an SQLite database; this Sluice uses PostgreSQL (${this.database}). ` +
          `Take the backup with pg_dump (online, consistent): ${postgresCommands.backup}`
      : `sluice restore replaces an SQLite database; this Sluice uses PostgreSQL (${this.database}). ` +
          `Stop every Sluice instance, then restore with pg_restore: ${postgresCommands.restore}`
  }
}

/** What to run instead with PostgreSQL (docs/production-deployment.md, "Backups"). */
export const postgresCommands = {
  backup: `pg_dump --format=custom --file=sluice-$(date -u +%Y%m%d-%H%M%S).dump "$SLUICE_DATABASE_URL"`,
  restore: `pg_restore --clean --if-exists --no-owner --single-transaction --dbname="$SLUICE_DATABASE_URL" sluice-YYYYMMDD-HHMMSS.dump`
} as const

/** The SQLite file at `location`; a BackupUnsupported when it is PostgreSQL. */
export const sqliteFile = (
  location: Store.Location,
  operation: BackupUnsupported["operation"]
): Effect.Effect<string, BackupUnsupported> =>
  location._tag === "Sqlite"
    ? Effect.succeed(location.file)
    : Effect.fail(new BackupUnsupported({ operation, database: Store.describe(location) }))
