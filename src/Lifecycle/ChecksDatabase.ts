/**
 * The startup checks of the database: it opens, its migrations are known (pending ones are applied by `serve`;
 * one from a newer Sluice is fatal), and `PRAGMA integrity_check` says ok. The database is opened read-only and
 * closed again; no database yet is fine (`serve` creates and migrates it).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Cause, Context, Effect, Layer } from "effect"
import { existsSync } from "node:fs"
import { migrations } from "../Store/migrations/index.js"
import { databaseFile } from "../Store/Store.js"
import type { Check, Outcome } from "./StartupValidator.js"

/** A namespace of vector memory, pinned to an embedding model and dimension. */
export interface Pin {
  readonly namespace: string
  readonly model: string
  readonly dim: number
}

export type DatabaseFacts =
  | { readonly _tag: "Absent"; readonly file: string }
  | { readonly _tag: "Unreadable"; readonly file: string; readonly error: string }
  | {
      readonly _tag: "Open"
      readonly file: string
      readonly applied: ReadonlyArray<number>
      readonly known: ReadonlyArray<{ readonly id: number; readonly name: string }>
      readonly integrity: ReadonlyArray<string>
      readonly pins: ReadonlyArray<Pin>
    }

const tableExists = (sql: SqlClient.SqlClient, name: string) =>
  Effect.map(
    sql<{ readonly n: number }>`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ${name}`,
    (rows) => (rows[0]?.n ?? 0) > 0
  )

const read = (file: string) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(SqliteClient.layer({ filename: file, readonly: true, disableWAL: true }))
    const sql = Context.get(context, SqlClient.SqlClient)
    const applied = (yield* tableExists(sql, "effect_sql_migrations"))
      ? (yield* sql<{ readonly id: number }>`SELECT migration_id AS id FROM effect_sql_migrations`).map((r) => r.id)
      : []
    const integrity = (yield* sql<{ readonly integrity_check: string }>`PRAGMA integrity_check`).map(
      (r) => r.integrity_check
    )
    const pins = (yield* tableExists(sql, "memory_namespaces"))
      ? yield* sql<Pin>`SELECT namespace, model, dim FROM memory_namespaces`
      : []
    const known = (yield* migrations).map(([id, name]) => ({ id, name }))
    return { _tag: "Open", file, applied, known, integrity, pins } as const
  }).pipe(Effect.scoped)

/** What the database holds, read once for the checks; never fails. */
export const gatherDatabase = (dataDir: string): Effect.Effect<DatabaseFacts> => {
  const file = databaseFile(dataDir)
  if (!existsSync(file)) return Effect.succeed({ _tag: "Absent", file })
  return read(file).pipe(
    Effect.catchAllCause((cause) => {
      const error = Cause.squash(cause)
      return Effect.succeed<DatabaseFacts>({
        _tag: "Unreadable",
        file,
        error: error instanceof Error ? error.message : String(error)
      })
    })
  )
}

const migrationsOutcome = (facts: DatabaseFacts): Outcome => {
  switch (facts._tag) {
    case "Absent":
      return { ok: true, skipped: true, detail: `no database yet: ${facts.file} is created and migrated at start` }
    case "Unreadable":
      return {
        ok: false,
        detail: `cannot open ${facts.file}: ${facts.error}`,
        fix: "restore the file from a backup, or move it aside to start with an empty database"
      }
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
  return facts.integrity.length === 1 && facts.integrity[0] === "ok"
    ? { ok: true, detail: "PRAGMA integrity_check: ok" }
    : {
        ok: false,
        detail: `PRAGMA integrity_check: ${facts.integrity.slice(0, 3).join("; ")}`,
        fix: "stop Sluice, restore the database from a backup (or `sqlite3 sluice.db .recover`)"
      }
}

/** The database checks over the facts read once. */
export const databaseChecks = (facts: DatabaseFacts): ReadonlyArray<Check> => [
  { name: "database-migrations", severity: "fatal", run: Effect.succeed(migrationsOutcome(facts)) },
  { name: "database-integrity", severity: "fatal", run: Effect.succeed(integrityOutcome(facts)) }
]
