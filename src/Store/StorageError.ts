/**
 * Storage failures as a typed error (never a defect): which operation failed, why, and whether trying again can
 * help (SQLite's busy/locked). Repositories wrap every query with `storage("repo.method")` (through `Rows.ts`); a
 * row that does not decode (or a value that does not encode) is a StorageError too, never retryable.
 */
import { Effect, ParseResult, Schema } from "effect"
import type { SqlError } from "@effect/sql/SqlError"

export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  /** e.g. "episodes.insert" */
  operation: Schema.String,
  reason: Schema.String,
  retryable: Schema.Boolean,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return `storage: ${this.operation} failed: ${this.reason}`
  }
}

const busy = /SQLITE_BUSY|SQLITE_LOCKED|database is locked|deadlock|could not serialize/i

const describe = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message
  return String(cause)
}

/** Turns an SqlError into a StorageError; busy and locked are retryable. */
export const fromSqlError = (operation: string) => (error: SqlError) => {
  const reason = describe(error.cause ?? error)
  return new StorageError({ operation, reason, retryable: busy.test(reason), cause: error.cause })
}

/** A row that does not decode (the table holds what this version cannot read) or a value that does not encode. */
export const fromParseError = (operation: string) => (error: ParseResult.ParseError) =>
  new StorageError({
    operation,
    reason: `row does not match its schema: ${ParseResult.TreeFormatter.formatErrorSync(error)}`,
    retryable: false,
    cause: error
  })

/** Maps an SQL effect's failures (SQL or row schema) to StorageError and names the span after the operation. */
export const storage =
  (operation: string) =>
  <A, R>(effect: Effect.Effect<A, SqlError | ParseResult.ParseError, R>): Effect.Effect<A, StorageError, R> =>
    effect.pipe(
      Effect.mapError((error) =>
        error._tag === "ParseError" ? fromParseError(operation)(error) : fromSqlError(operation)(error)
      ),
      Effect.withSpan(`Store.${operation}`)
    )
