/**
 * Migration 4: API keys (see docs/security.md). A key's id is stored in clear (it is how a presented key finds its
 * row); its secret only as a SHA-256 digest (hex). Scopes are a comma list, limits a JSON object (TEXT), times
 * BIGINT milliseconds; `revoked_at` stays NULL until the key is revoked. Rows are never deleted, so "a key was
 * ever created" stays true once it is (revoking the last key must not open the gateway).
 *
 * Indexes, one per query shape of KeysRepo:
 * - the primary key on `id`: the lookup of every authenticated request, and revocation;
 * - api_keys_created (created_at, id): `sluice keys list`, oldest first, without a sort;
 * - api_keys_active (revoked_at): the count of keys not revoked (`auth-configured` at startup).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    limits TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
  )`
  yield* sql`CREATE INDEX api_keys_created ON api_keys (created_at, id)`
  yield* sql`CREATE INDEX api_keys_active ON api_keys (revoked_at)`
})
