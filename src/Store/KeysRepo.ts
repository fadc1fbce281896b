/**
 * The API keys table (migration 0004): what a key may do (scopes), its limits, and the digest of its secret.
 *
 * Choices:
 * - The schemas of a key live here, beside the table they describe (like `Memory` in MemoriesRepo); the gateway's
 *   Http/Auth*.ts and the CLI import them.
 * - Scopes are a comma list (TEXT), limits JSON (TEXT), both decoded with Schema: a row that does not decode is a
 *   StorageError (the table holds something this version cannot read). Millisecond columns decode from a number
 *   or a numeric string (PostgreSQL BIGINT), as in EventsRepo.
 * - Rows are never deleted: `revoke` sets `revoked_at`, so the list keeps the history and "any key exists" never
 *   turns false again.
 * - `make(sql)` builds the repository over a given client, so the gateway can use it when a database is present
 *   and do without one when it is not.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option, ParseResult, Schema } from "effect"
import { StorageError, storage } from "./StorageError.js"

/** What a key may call: inference (Ollama and OpenAI APIs), agents, admin (metrics, health details, admin). */
export const Scope = Schema.Literal("inference", "agents", "admin")
export type Scope = typeof Scope.Type
export const allScopes: ReadonlyArray<Scope> = Scope.literals

/** The scheduler class of a key's calls. */
export const Priority = Schema.Literal("interactive", "normal", "batch")
export type Priority = typeof Priority.Type

/** A budget for each request made with the key (Llm/Budget.ts); a missing field is not limited. */
export const KeyBudget = Schema.Struct({
  calls: Schema.optional(Schema.Number),
  tokens: Schema.optional(Schema.Number),
  timeMs: Schema.optional(Schema.Number)
})
export type KeyBudget = typeof KeyBudget.Type

/** A key's limits; a missing field is not limited. */
export const KeyLimits = Schema.Struct({
  /** Requests per minute (a token bucket of `rpm` refilled over a minute). */
  rpm: Schema.optional(Schema.Number),
  /** Model tokens (prompt + completion) per minute, charged after each call. */
  tpm: Schema.optional(Schema.Number),
  /** Requests in flight at once. */
  concurrency: Schema.optional(Schema.Number),
  priority: Schema.optional(Priority),
  budget: Schema.optional(KeyBudget)
})
export type KeyLimits = typeof KeyLimits.Type

const Millis = Schema.Union(Schema.Number, Schema.NumberFromString)

/** A key as listed (no secret). Times are epoch milliseconds. */
export const ApiKey = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  scopes: Schema.Array(Scope),
  limits: KeyLimits,
  createdAt: Millis,
  revokedAt: Schema.NullOr(Millis)
})
export type ApiKey = typeof ApiKey.Type

/** A key with the SHA-256 digest (hex) of its secret, as stored. */
export const StoredKey = Schema.Struct({ ...ApiKey.fields, secretHash: Schema.String })
export type StoredKey = typeof StoredKey.Type

/** The row as the database holds it: scopes a comma list, limits JSON. */
const Row = Schema.Struct({
  ...StoredKey.fields,
  scopes: Schema.compose(Schema.split(","), Schema.Array(Scope)),
  limits: Schema.parseJson(KeyLimits)
})

const columns = (sql: SqlClient.SqlClient) =>
  sql`id, name, secret_hash AS ${sql("secretHash")}, scopes, limits, created_at AS ${sql("createdAt")},
    revoked_at AS ${sql("revokedAt")}`

const decodeRows =
  (operation: string) =>
  (effect: Effect.Effect<ReadonlyArray<unknown>, SqlError>): Effect.Effect<ReadonlyArray<StoredKey>, StorageError> =>
    storage(operation)(effect).pipe(
      Effect.flatMap((rows) =>
        Schema.decodeUnknown(Schema.Array(Row))(rows).pipe(
          Effect.mapError(
            (e) =>
              new StorageError({
                operation,
                reason: `unreadable row: ${ParseResult.TreeFormatter.formatErrorSync(e)}`,
                retryable: false
              })
          )
        )
      )
    )

/** The repository over `sql`. */
export const make = (sql: SqlClient.SqlClient) => {
  const find = (id: string): Effect.Effect<Option.Option<StoredKey>, StorageError> =>
    decodeRows("keys.find")(sql`SELECT ${columns(sql)} FROM api_keys WHERE id = ${id}`).pipe(
      Effect.map((rows) => Option.fromNullable(rows[0]))
    )
  return {
    insert: (key: StoredKey): Effect.Effect<void, StorageError> =>
      Effect.flatMap(Effect.orDie(Schema.encode(Row)(key)), (row) =>
        storage("keys.insert")(
          sql`INSERT INTO api_keys ${sql.insert({
            id: row.id,
            name: row.name,
            secret_hash: row.secretHash,
            scopes: row.scopes,
            limits: row.limits,
            created_at: row.createdAt,
            revoked_at: row.revokedAt
          })}`
        )
      ),
    find,
    /** Every key, oldest first. */
    list: decodeRows("keys.list")(sql`SELECT ${columns(sql)} FROM api_keys ORDER BY created_at, id`),
    /** Revokes `id` at `at` unless it already is; the key as it is now (none: no such key). */
    revoke: (id: string, at: number): Effect.Effect<Option.Option<StoredKey>, StorageError> =>
      storage("keys.revoke")(sql`UPDATE api_keys SET revoked_at = ${at} WHERE id = ${id} AND revoked_at IS NULL`).pipe(
        Effect.zipRight(find(id))
      ),
    /** Whether any key was ever created (revoked ones count: revoking every key must not open the gateway). */
    any: storage("keys.any")(sql<{ readonly id: string }>`SELECT id FROM api_keys LIMIT 1`).pipe(
      Effect.map((rows) => rows.length > 0)
    ),
    /** Keys not revoked. */
    active: storage("keys.active")(
      sql<{ readonly n: number | string }>`SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL`
    ).pipe(Effect.map((rows) => Number(rows[0]?.n ?? 0)))
  } as const
}

export interface Service extends ReturnType<typeof make> {}

/** Reads and writes the API keys. */
export class KeysRepo extends Effect.Service<KeysRepo>()("sluice/KeysRepo", {
  effect: Effect.map(SqlClient.SqlClient, make)
}) {}
