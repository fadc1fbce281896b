/**
 * `sluice backup` and `sluice restore` (Store/Backup.ts does the work; docs/production-deployment.md has the
 * strategy). `backup` runs beside a serving Sluice: an online, verified copy of `<data-dir>/sluice.db` to
 * `<to>/sluice-YYYYMMDD-HHMMSS.db`, keeping the newest `--keep`. `restore` checks the file, refuses while a
 * server has the database open, and (with `--force`) keeps the database it replaces beside it. The database is
 * the one `SLUICE_DATABASE_URL` chooses: an SQLite file elsewhere (`file:<path>`) is backed up the same way;
 * PostgreSQL is refused with the pg_dump / pg_restore commands to run instead (Store/BackupUnsupported.ts).
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import * as Backup from "../Store/Backup.js"
import { sqliteFile } from "../Store/BackupUnsupported.js"
import * as Store from "../Store/Store.js"
import { dataDir } from "./BackendFlags.js"

const to = Options.directory("to").pipe(
  Options.withDescription("where backups go (default <data-dir>/backups)"),
  Options.optional
)
const keep = Options.integer("keep").pipe(
  Options.withDescription(`how many backups to keep in that directory, newest first (default ${Backup.defaults.keep})`),
  Options.withDefault(Backup.defaults.keep)
)
const file = Args.file({ name: "file", exists: "yes" }).pipe(Args.withDescription("the backup to restore"))
const force = Options.boolean("force").pipe(
  Options.withDescription("replace an existing database (kept beside it as sluice.db.replaced-<stamp>)")
)

export interface BackupFlags {
  readonly dataDir: string
  readonly to: Option.Option<string>
  readonly keep: number
}

export interface RestoreFlags {
  readonly file: string
  readonly dataDir: string
  readonly force: boolean
}

/** Runs `sluice backup` for parsed flags. */
export const runBackup = (flags: BackupFlags) =>
  Effect.gen(function* () {
    if (flags.keep < 1) return yield* Effect.fail(new Error("--keep must be at least 1"))
    const database = yield* Effect.flatMap(Store.location(flags.dataDir), (at) => sqliteFile(at, "backup"))
    const to = Option.getOrUndefined(flags.to)
    const report = yield* Backup.take({ dataDir: flags.dataDir, database, to, keep: flags.keep })
    yield* Console.log(
      `backed up ${flags.dataDir} to ${report.file} (${report.bytes} bytes in ${report.durationMs} ms, integrity ok)`
    )
    for (const removed of report.removed) yield* Console.log(`removed old backup ${removed} (keeping ${flags.keep})`)
  })

/** Runs `sluice restore` for parsed flags. */
export const runRestore = (flags: RestoreFlags) =>
  Effect.gen(function* () {
    const database = yield* Effect.flatMap(Store.location(flags.dataDir), (at) => sqliteFile(at, "restore"))
    const report = yield* Backup.restore({ ...flags, database })
    yield* Console.log(`restored ${report.file} into ${report.into} (integrity ok)`)
    if (report.previous !== undefined) yield* Console.log(`the replaced database is kept as ${report.previous}`)
  })

export const backup = Command.make("backup", { dataDir, to, keep }, runBackup).pipe(
  Command.withDescription("Copy the database online (while serving) to a timestamped, verified file; keep the newest N")
)

export const restore = Command.make("restore", { file, dataDir, force }, runRestore).pipe(
  Command.withDescription("Put a backup in place of the database: verified first, refused while Sluice runs")
)
