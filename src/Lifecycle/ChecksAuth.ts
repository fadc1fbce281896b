/**
 * The `auth-configured` startup check: a gateway bound beyond loopback must have an API key, from the environment
 * (`SLUICE_API_KEY`, `SLUICE_API_KEYS`) or in the key store (keys not revoked), SQLite or PostgreSQL. The database
 * is opened read-only and closed again; no database, or one without the keys table yet, holds no key.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Layer } from "effect"
import { isLoopback } from "../Config.js"
import * as Store from "../Store/Store.js"
import type { Check, Context as CheckContext } from "./StartupValidator.js"

/** Keys not revoked in the database `SLUICE_DATABASE_URL` chooses (0 without a database or a keys table). */
export const activeKeys = (dataDir: string): Effect.Effect<number, unknown> =>
  Effect.gen(function* () {
    const location = yield* Store.location(dataDir)
    if (!Store.exists(location)) return 0
    const context = yield* Layer.build(Store.layerReader(location))
    const sql = Context.get(context, SqlClient.SqlClient)
    if (!(yield* Store.tableExists(sql, "api_keys"))) return 0
    const [row] = yield* sql<{ readonly n: number }>`SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL`
    return Number(row?.n ?? 0)
  }).pipe(Effect.scoped)

/** What startup says when a gateway reachable from other machines would have no key. */
export const unprotected = (host: string) =>
  `Sluice is bound to ${host}, reachable beyond this machine, but no API key is configured: ` +
  "create one with `sluice keys create --name <name>` or set SLUICE_API_KEY"

export const authConfigured = (c: CheckContext): Check => ({
  name: "auth-configured",
  severity: "fatal",
  run: Effect.gen(function* () {
    if (isLoopback(c.host)) return { ok: true, detail: `bound to loopback (${c.host}): only this machine can call` }
    if (c.apiKeys) return { ok: true, detail: `bound to ${c.host}; API keys are set in the environment` }
    const keys = yield* activeKeys(c.dataDir)
    return keys > 0
      ? { ok: true, detail: `bound to ${c.host}; ${keys} API key(s) in the key store` }
      : {
          ok: false,
          detail: unprotected(c.host),
          fix: "create a key (`sluice keys create --name <name> --data-dir <dir>`), set SLUICE_API_KEY, or bind --host 127.0.0.1"
        }
  })
})
