/**
 * `sluice keys create` and `sluice serve` (the built CLI, as child processes) on PostgreSQL: both given the same
 * `SLUICE_DATABASE_URL` and different data directories, the key one makes is the key the other checks, its row is
 * in PostgreSQL, no SQLite file is created, and health names the database. And PostgreSQL stopped mid-run: calls
 * with an environment key go on, calls with a stored key get 503 (authentication cannot be checked), health says
 * the database is down; all of it recovers when the server is back, without a restart.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, Schedule } from "effect"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { postgresBin, postgresServer } from "../support/PostgresServer.js"
import { postgresTitle } from "../support/Stores.js"
import { sluice, waitFor } from "./process.js"

const chat = (url: string, key?: string) =>
  Effect.promise(() =>
    fetch(`${url}/api/chat`, {
      method: "POST",
      headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "llama3.2", stream: false, messages: [{ role: "user", content: "hi" }] })
    }).then(async (r) => ({ status: r.status, body: await r.text() }))
  )

const healthOf = (url: string, key: string) =>
  Effect.promise(() =>
    fetch(`${url}/health`, { headers: { authorization: `Bearer ${key}` } }).then(
      (r) => r.json() as Promise<{ components: { database: { status: string; detail: unknown } } }>
    )
  )

/** Polls /health until the database component has `status` (health runs its checks every second here). */
const databaseBecomes = (url: string, key: string, status: string) =>
  healthOf(url, key).pipe(
    Effect.repeat({ until: (h) => h.components.database.status === status, schedule: Schedule.spaced("200 millis") }),
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`database never ${status}`) })
  )

describe.skipIf(postgresBin === undefined)(postgresTitle("sluice serve and sluice keys"), () => {
  it.scopedLive(
    "a key made by `keys create` is stored in PostgreSQL and opens `serve` on the same database",
    () =>
      Effect.gen(function* () {
        const server = yield* postgresServer
        const url = yield* server.createDatabase()
        const env = { SLUICE_DATABASE_URL: url }

        const create = yield* sluice(["keys", "create", "--name", "smoke", "--scopes", "inference,admin"], env)
        assert.strictEqual(yield* Effect.promise(() => create.exited), 0, create.stderr())
        const key = /sk-sluice-([A-Za-z0-9]{12})-[A-Za-z0-9_-]{43}/.exec(create.stdout())
        assert.isNotNull(key, create.stdout())
        assert.isFalse(existsSync(join(create.dataDir, "sluice.db")), "no SQLite file beside")

        const serve = yield* sluice(["serve", "--port", "0", "--backend", "simulator"], env)
        const gateway = yield* waitFor(serve, /Listening on (http:\/\/[\w.:[\]]+)/)
        assert.strictEqual((yield* chat(gateway)).status, 401, "a key exists in the store: calls need one")
        const answered = yield* chat(gateway, key![0])
        assert.strictEqual(answered.status, 200, answered.body)
        const health = yield* healthOf(gateway, key![0])
        const detail = { enabled: true, kind: "postgres", read: true, write: true }
        assert.deepStrictEqual(health.components.database.detail, detail)
        assert.isFalse(existsSync(join(serve.dataDir, "sluice.db")), "no SQLite file beside")
        const metrics = yield* Effect.promise(() =>
          fetch(`${gateway}/metrics`, { headers: { authorization: `Bearer ${key![0]}` } }).then((r) => r.text())
        )
        assert.match(metrics, /^sluice_shared_store_up\{store="postgres"\} 1$/m)

        const sql = yield* Effect.map(Layer.build(PgClient.layer({ url: Redacted.make(url) })), (c) =>
          Context.get(c, SqlClient.SqlClient)
        )
        const rows = yield* sql<{ id: string; name: string; scopes: string }>`SELECT id, name, scopes FROM api_keys`
        assert.deepStrictEqual(rows, [{ id: key![1]!, name: "smoke", scopes: "inference,admin" }])
      }),
    60_000
  )
  it.scopedLive(
    "PostgreSQL stopped mid-run: environment keys go on, stored keys get 503, health is down but ready; all recover",
    () =>
      Effect.gen(function* () {
        const server = yield* postgresServer
        const url = yield* server.createDatabase()
        const envKey = "sk-env-0123456789abcdef0123"
        const env = { SLUICE_DATABASE_URL: url, SLUICE_API_KEY: envKey, SLUICE_HEALTH_INTERVAL: "1 second" }
        const create = yield* sluice(["keys", "create", "--name", "stored"], env)
        assert.strictEqual(yield* Effect.promise(() => create.exited), 0, create.stderr())
        const stored = /sk-sluice-[A-Za-z0-9]{12}-[A-Za-z0-9_-]{43}/.exec(create.stdout())![0]
        const serve = yield* sluice(["serve", "--port", "0", "--backend", "simulator"], env)
        const gateway = yield* waitFor(serve, /Listening on (http:\/\/[\w.:[\]]+)/)
        assert.strictEqual((yield* chat(gateway, stored)).status, 200)

        yield* server.stop
        yield* databaseBecomes(gateway, envKey, "down")
        assert.strictEqual((yield* chat(gateway, envKey)).status, 200, "inference needs no database")
        // a shared database down fails every instance alike: readiness stays up so the balancer keeps what works
        const ready = yield* Effect.promise(() =>
          fetch(`${gateway}/health/ready`, { headers: { authorization: `Bearer ${envKey}` } })
        )
        assert.strictEqual(ready.status, 200)
        const refused = yield* chat(gateway, stored)
        assert.strictEqual(refused.status, 503)
        assert.include(refused.body, "the key store did not answer")

        yield* server.start
        yield* databaseBecomes(gateway, envKey, "ok")
        assert.strictEqual((yield* chat(gateway, stored)).status, 200)
      }),
    60_000
  )
})
