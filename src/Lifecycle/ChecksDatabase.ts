/**
 * The startup checks of the database `SLUICE_DATABASE_URL` chooses (Store.ts): it opens, its migrations are known
 * (pending ones are applied by `serve`; one from a newer Sluice is fatal), and
 * - SQLite: `PRAGMA integrity_check` says ok. The file is opened read-only and closed again; no file yet is fine
 *   (`serve` creates and migrates it).
 * - PostgreSQL: the server answers within the connect timeout (a failure names the URL without its password, the
 *   driver's reason: connection refused, authentication failed, database does not exist, and what to do) and is
 *   version 13 or newer. PostgreSQL checks its own pages, so there is no integrity check to run.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Cause, Context, Effect, Layer } from "effect"
import { migrations } from "../Store/migrations/index.js"
import * as Postgres from "../Store/Postgres.js"
import { StorageError } from "../Store/StorageError.js"
import * as Store from "../Store/Store.js"
import type { Check, Outcome } from "./StartupValidator.js"

/** A namespace of vector memory, pinned to an embedding model and dimension. */
export interface Pin {
  readonly namespace: string
  readonly model: string
  readonly dim: number
}

export type DatabaseFacts =
  | { readonly _tag: "Absent"; readonly file: string }
  | { readonly _tag: "Unreadable"; readonly kind: Kind; readonly file: string; readonly error: string }
  | {
      readonly _tag: "Open"
      readonly kind: Kind
      /** The SQLite file, or the PostgreSQL URL without its password. */
      readonly file: string
      readonly applied: ReadonlyArray<number>
      readonly known: ReadonlyArray<{ readonly id: number; readonly name: string }>
      /** `PRAGMA integrity_check`'s lines (SQLite); empty on PostgreSQL. */
      readonly integrity: ReadonlyArray<string>
      /** PostgreSQL's `server_version_num` and name (none on SQLite). */
      readonly version?: { readonly num: number; readonly text: string }
      readonly pins: ReadonlyArray<Pin>
    }

type Kind = "sqlite" | "postgres"

const read = (location: Store.Location) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(Store.layerReader(location))
    const sql = Context.get(context, SqlClient.SqlClient)
    const kind = Store.kind(location)
    const applied = (yield* Store.tableExists(sql, "effect_sql_migrations"))
      ? (yield* sql<{ readonly id: number }>`SELECT migration_id AS id FROM effect_sql_migrations`).map((r) => r.id)
      : []
    const integrity =
      kind === "sqlite"
        ? (yield* sql<{ readonly integrity_check: string }>`PRAGMA integrity_check`).map((r) => r.integrity_check)
        : []
    const version = kind === "postgres" ? { version: yield* Postgres.serverVersion(sql) } : {}
    const pins = (yield* Store.tableExists(sql, "memory_namespaces"))
      ? yield* sql<Pin>`SELECT namespace, model, dim FROM memory_namespaces`
      : []
    const known = (yield* migrations).map(([id, name]) => ({ id, name }))
    const file = Store.describe(location)
    return { _tag: "Open", kind, file, applied, known, integrity, ...version, pins } as const
  }).pipe(Effect.scoped)

const message = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  return error instanceof StorageError ? error.reason : error instanceof Error ? error.message : String(error)
}

/** What the database holds, read once for the checks; never fails. */
export const gatherDatabase = (dataDir: string): Effect.Effect<DatabaseFacts> =>
  Store.location(dataDir).pipe(
    Effect.matchCauseEffect({
      onFailure: (cause) =>
        Effect.succeed<DatabaseFacts>({
          _tag: "Unreadable",
          kind: "sqlite",
          file: "SLUICE_DATABASE_URL",
          error: message(cause)
        }),
      onSuccess: (location) =>
        location._tag === "Sqlite" && !Store.exists(location)
          ? Effect.succeed<DatabaseFacts>({ _tag: "Absent", file: location.file })
          : read(location).pipe(
              Effect.catchAllCause((cause) =>
                Effect.succeed<DatabaseFacts>({
                  _tag: "Unreadable",
                  kind: Store.kind(location),
                  file: Store.describe(location),
                  error: message(cause)
                })
              )
            )
    })
  )

const unreadable = (facts: Extract<DatabaseFacts, { _tag: "Unreadable" }>): Outcome =>
  facts.kind === "postgres"
    ? { ok: false, detail: facts.error, fix: Postgres.adviceFor(facts.error) }
    : {
        ok: false,
        detail: `cannot open ${facts.file}: ${facts.error}`,
        fix:
          facts.file === "SLUICE_DATABASE_URL"
            ? "set SLUICE_DATABASE_URL to postgres://..., file:<path> or a path (unset: <data-dir>/sluice.db)"
            : "restore the file from a backup, or move it aside to start with an empty database"
      }

const migrationsOutcome = (facts: DatabaseFacts): Outcome => {
  switch (facts._tag) {
    case "Absent":
      return { ok: true, skipped: true, detail: `no database yet: ${facts.file} is created and migrated at start` }
    case "Unreadable":
      return unreadable(facts)
    case "Open": {
      const known = new Set(facts.known.map((m) => m.id))
      const unknown = facts.applied.filter((id) => !known.has(id))
      if (unknown.length > 0)
        return {
          ok: false,
          detail: `migrated by a newer Sluice (unknown migrations ${unknown.join(", ")})`,
          fix: "run the Sluice version that migrated this database, or restore a backup taken before the upgrade"
        }
      const pending = facts.known.filter((m) => !facts.applied.includes(m.id))
      return {
        ok: true,
        detail:
          pending.length === 0
            ? `${facts.file}: all ${facts.known.length} migrations applied`
            : `${facts.file}: ${facts.applied.length} of ${facts.known.length} migrations applied; ` +
              `${pending.map((m) => `${m.id}_${m.name}`).join(", ")} applied at start`
      }
    }
  }
}

const integrityOutcome = (facts: DatabaseFacts): Outcome => {
  if (facts._tag === "Absent") return { ok: true, skipped: true, detail: "no database yet" }
  if (facts._tag === "Unreadable") return { ok: true, skipped: true, detail: "the database does not open (see above)" }
  if (facts.kind === "postgres") return { ok: true, skipped: true, detail: "PostgreSQL checks its own pages" }
  return facts.integrity.length === 1 && facts.integrity[0] === "ok"
    ? { ok: true, detail: "PRAGMA integrity_check: ok" }
    : {
        ok: false,
        detail: `PRAGMA integrity_check: ${facts.integrity.slice(0, 3).join("; ")}`,
        fix: "stop Sluice, restore the database from a backup (or `sqlite3 sluice.db .recover`)"
      }
}

const versionOutcome = (facts: DatabaseFacts): Outcome => {
  if (facts._tag !== "Open") return { ok: true, skipped: true, detail: "the database does not open (see above)" }
  if (facts.version === undefined) return { ok: true, skipped: true, detail: "SQLite is embedded" }
  return facts.version.num >= Postgres.minimumVersion * 10_000
    ? { ok: true, detail: `PostgreSQL ${facts.version.text}` }
    : {
        ok: false,
        detail: `PostgreSQL ${facts.version.text} is older than ${Postgres.minimumVersion}`,
        fix: `upgrade PostgreSQL to ${Postgres.minimumVersion} or newer`
      }
}

/** The database checks over the facts read once. */
export const databaseChecks = (facts: DatabaseFacts): ReadonlyArray<Check> => [
  { name: "database-migrations", severity: "fatal", run: Effect.succeed(migrationsOutcome(facts)) },
  { name: "database-integrity", severity: "fatal", run: Effect.succeed(integrityOutcome(facts)) },
  { name: "database-version", severity: "fatal", run: Effect.succeed(versionOutcome(facts)) }
]
