/**
 * The API keys table (migration 0004): what a key may do (scopes), its limits, and the digest of its secret.
 *
 * Choices:
 * - The schemas of a key live here, beside the table they describe (like `Memory` in MemoriesRepo); the gateway's
 *   Http/Auth*.ts and the CLI import them.
 * - Rows are read and written as `Rows.ts` says (SqlSchema, one codec per table). Scopes are a comma list (TEXT),
 *   limits JSON (TEXT), both in the codec: a row that does not decode is a StorageError (the table holds something
 *   this version cannot read). Millisecond columns are `Rows.Int64` (PostgreSQL BIGINT), as in EventsRepo.
 * - Rows are never deleted: `revoke` sets `revoked_at`, so the list keeps the history and "any key exists" never
 *   turns false again.
 * - `make(sql)` builds the repository over a given client, so the gateway can use it when a database is present
 *   and do without one when it is not.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Option, Schema } from "effect"
import * as Rows from "./Rows.js"

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

/** A key as listed (no secret). Times are epoch milliseconds. */
export const ApiKey = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  scopes: Schema.Array(Scope),
  limits: KeyLimits,
  createdAt: Rows.Int64,
  revokedAt: Schema.NullOr(Rows.Int64)
})
export type ApiKey = typeof ApiKey.Type

/** A key with the SHA-256 digest (hex) of its secret, as stored. */
export const StoredKey = Schema.Struct({ ...ApiKey.fields, secretHash: Schema.String })
export type StoredKey = typeof StoredKey.Type

/** The row as the database holds it: scopes a comma list, limits JSON. */
const Row = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  secretHash: Rows.column("secret_hash", Schema.String),
  scopes: Schema.compose(Schema.split(","), Schema.Array(Scope)),
  limits: Schema.parseJson(KeyLimits),
  createdAt: Rows.column("created_at", Rows.Int64),
  revokedAt: Rows.column("revoked_at", Schema.NullOr(Rows.Int64))
})

const columns = (sql: SqlClient.SqlClient) => sql`id, name, secret_hash, scopes, limits, created_at, revoked_at`

/** The repository over `sql`. */
export const make = (sql: SqlClient.SqlClient) => {
  const find = Rows.findOne("keys.find", {
    Request: Schema.String,
    Result: Row,
    execute: (id) => sql`SELECT ${columns(sql)} FROM api_keys WHERE id = ${id}`
  })
  const revoke = Rows.void("keys.revoke", {
    Request: Schema.Struct({ id: Schema.String, at: Schema.Number }),
    execute: ({ at, id }) => sql`UPDATE api_keys SET revoked_at = ${at} WHERE id = ${id} AND revoked_at IS NULL`
  })
  return {
    insert: Rows.void("keys.insert", { Request: Row, execute: (row) => sql`INSERT INTO api_keys ${sql.insert(row)}` }),
    find,
    /** Every key, oldest first. */
    list: Rows.findAll("keys.list", {
      Request: Schema.Void,
      Result: Row,
      execute: () => sql`SELECT ${columns(sql)} FROM api_keys ORDER BY created_at, id`
    })(undefined),
    /** Revokes `id` at `at` unless it already is; the key as it is now (none: no such key). */
    revoke: (id: string, at: number) => Effect.zipRight(revoke({ id, at }), find(id)),
    /** Whether any key was ever created (revoked ones count: revoking every key must not open the gateway). */
    any: Rows.findAll("keys.any", {
      Request: Schema.Void,
      Result: Schema.Struct({ id: Schema.String }),
      execute: () => sql`SELECT id FROM api_keys LIMIT 1`
    })(undefined).pipe(Effect.map((rows) => rows.length > 0)),
    /** Keys not revoked. */
    active: Rows.findOne("keys.active", {
      Request: Schema.Void,
      Result: Schema.Struct({ n: Rows.Int64 }),
      execute: () => sql`SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL`
    })(undefined).pipe(Effect.map(Option.match({ onNone: () => 0, onSome: (row) => row.n })))
  } as const
}

export interface Service extends ReturnType<typeof make> {}

/** Reads and writes the API keys. */
export class KeysRepo extends Effect.Service<KeysRepo>()("sluice/KeysRepo", {
  effect: Effect.map(SqlClient.SqlClient, make)
}) {}
