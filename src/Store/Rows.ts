/**
 * How every repository reads and writes rows: @effect/sql's `SqlSchema` with a Request schema for what a statement
 * binds and a Result schema for each row it returns, every failure a `StorageError` named after the operation.
 * Store.ts's module comment says why SqlSchema rather than `Model`.
 *
 * Choices:
 * - `findAll`/`findOne`/`void` wrap SqlSchema's own with `storage(operation)`, so an SQL failure and a row that does
 *   not decode (or a value that does not encode) are the same typed error, with the operation's span.
 * - Codecs map a table's columns (snake_case, the Encoded side) to the domain (camelCase, the Type side) with
 *   `column`; a nullable column whose domain field is optional uses `nullable` (NULL reads as an absent field and
 *   an absent field is written as NULL, so an insert always names every column).
 * - `Int64` decodes a BIGINT column or a COUNT: a number on SQLite, a numeric string on PostgreSQL.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as SqlSchema from "@effect/sql/SqlSchema"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Option, Schema } from "effect"
import { fromSqlError, storage, type StorageError } from "./StorageError.js"

/** A BIGINT column or a COUNT: a number, or the numeric string PostgreSQL returns for 64-bit integers. */
export const Int64 = Schema.Union(Schema.Number, Schema.NumberFromString)

/** The field read from (and written to) column `key`. */
export const column = <K extends string, S extends Schema.Schema.Any>(key: K, schema: S) =>
  Schema.propertySignature(schema).pipe(Schema.fromKey(key))

/** An optional field in a nullable column `key`: NULL reads as absent, absent (or undefined) is written as NULL. */
export const nullable = <K extends string, A, I, R>(key: K, schema: Schema.Schema<A, I, R>) =>
  Schema.requiredToOptional(Schema.NullOr(schema), Schema.typeSchema(schema), {
    decode: Option.fromNullable,
    encode: (value) => Option.getOrNull(value) ?? null
  }).pipe(Schema.fromKey(key))

interface Query<IA, II, IR, A, AI, AR, R> {
  readonly Request: Schema.Schema<IA, II, IR>
  readonly Result: Schema.Schema<A, AI, AR>
  readonly execute: (request: II) => Effect.Effect<ReadonlyArray<unknown>, SqlError, R>
}

/** Every row the statement returns, decoded. */
export const findAll = <IA, II, IR, A, AI, AR, R>(operation: string, options: Query<IA, II, IR, A, AI, AR, R>) => {
  const run = SqlSchema.findAll(options)
  return (request: IA): Effect.Effect<ReadonlyArray<A>, StorageError, R | IR | AR> => storage(operation)(run(request))
}

/** The first row the statement returns, decoded; none when it returns none. */
export const findOne = <IA, II, IR, A, AI, AR, R>(operation: string, options: Query<IA, II, IR, A, AI, AR, R>) => {
  const run = SqlSchema.findOne(options)
  return (request: IA): Effect.Effect<Option.Option<A>, StorageError, R | IR | AR> => storage(operation)(run(request))
}

const void_ = <IA, II, IR, R>(
  operation: string,
  options: {
    readonly Request: Schema.Schema<IA, II, IR>
    readonly execute: (request: II) => Effect.Effect<unknown, SqlError, R>
  }
) => {
  const run = SqlSchema.void(options)
  return (request: IA): Effect.Effect<void, StorageError, R | IR> => storage(operation)(run(request))
}
export {
  /** A statement run for its effect (insert, update, delete); the request is encoded, the result discarded. */
  void_ as void
}

/** Runs `effect` in one transaction; an SqlError (of begin, commit, or a statement inside) becomes a StorageError. */
export const transaction =
  (sql: SqlClient.SqlClient, operation: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, SqlError> | StorageError, R> =>
    sql.withTransaction(effect).pipe(
      Effect.catchIf(
        (error): error is SqlError => error instanceof SqlError,
        (error) => Effect.fail(fromSqlError(operation)(error))
      )
    )
