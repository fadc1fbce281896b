/**
 * PostgreSQL as Sluice's database, beyond the repositories (which test/Store/*Repo*.test.ts run on both):
 * `SLUICE_DATABASE_URL` chooses the database; a connection that fails names the URL without its password and the
 * driver's reason; instances starting together migrate once; the startup checks and the health component report
 * PostgreSQL (and `sluice_shared_store_up{store="postgres"}` follows it down and back up); `sluice backup` and
 * `restore` refuse it, naming pg_dump and pg_restore commands that this test runs and restores from.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer, Metric, Option, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runBackup, runRestore } from "../../src/Cli/Backup.js"
import { activeKeys } from "../../src/Lifecycle/ChecksAuth.js"
import { databaseChecks, gatherDatabase } from "../../src/Lifecycle/ChecksDatabase.js"
import * as HealthComponents from "../../src/Observability/HealthComponents.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import { BackupUnsupported, postgresCommands } from "../../src/Store/BackupUnsupported.js"
import { KeysRepo } from "../../src/Store/KeysRepo.js"
import * as Postgres from "../../src/Store/Postgres.js"
import * as Store from "../../src/Store/Store.js"
import { closedPort } from "../Cli/process.js"
import { Postgres as Server, postgresBin } from "../support/PostgresServer.js"
import { postgresTitle } from "../support/Stores.js"

const withUrl = (url: string) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SLUICE_DATABASE_URL", url]])))

const opened = (url: string) => Layer.build(Store.layerPg({ url: Redacted.make(url) }))

const outcomes = (dataDir: string) =>
  Effect.flatMap(gatherDatabase(dataDir), (facts) =>
    Effect.forEach(databaseChecks(facts), (check) => Effect.map(check.run, (o) => [check.name, o] as const))
  ).pipe(Effect.map((rows) => new Map(rows)))

const up = Effect.map(Metric.value(Metric.tagged(Metrics.sharedStoreUp, "store", "postgres")), (s) => s.value)

describe("SLUICE_DATABASE_URL", () => {
  it("chooses PostgreSQL for postgres:// and postgresql://, SQLite otherwise", () => {
    const at = (url?: string) => Store.locate("/data", Option.fromNullable(url))
    assert.deepStrictEqual(at(), Either.right({ _tag: "Sqlite", file: "/data/sluice.db" }))
    assert.deepStrictEqual(at(" "), Either.right({ _tag: "Sqlite", file: "/data/sluice.db" }))
    assert.deepStrictEqual(at("file:/srv/s.db"), Either.right({ _tag: "Sqlite", file: "/srv/s.db" }))
    assert.deepStrictEqual(at("file:///srv/s.db"), Either.right({ _tag: "Sqlite", file: "/srv/s.db" }))
    assert.deepStrictEqual(at("state/s.db"), Either.right({ _tag: "Sqlite", file: "state/s.db" }))
    for (const url of ["postgres://u:pw@db:5432/sluice", "postgresql://db/sluice?sslmode=require"]) {
      const location = Either.getOrThrow(at(url))
      assert.strictEqual(Store.kind(location), "postgres")
    }
    assert.deepStrictEqual(
      at("mysql://u:pw@db/sluice"),
      Either.left("mysql://u:***@db/sluice: expected " + "postgres://..., postgresql://..., file:<path> or a path")
    )
  })

  it("redacts the password, in the user part or as a parameter", () => {
    assert.strictEqual(Postgres.redact("postgres://sluice:s3cr%40t@db:5432/x"), "postgres://sluice:***@db:5432/x")
    assert.strictEqual(
      Postgres.redact("postgres://db/x?user=a&password=b&ssl=1"),
      "postgres://db/x?user=a&password=***&ssl=1"
    )
    assert.strictEqual(Postgres.redact("postgres://db/x"), "postgres://db/x")
  })

  it.effect("backup and restore refuse PostgreSQL, naming pg_dump and pg_restore", () =>
    Effect.gen(function* () {
      const url = "postgres://sluice:secret@db:5432/sluice"
      const backup = yield* Effect.flip(runBackup({ dataDir: "/data", to: Option.none(), keep: 7 }).pipe(withUrl(url)))
      assert.instanceOf(backup, BackupUnsupported)
      assert.include(backup.message, "postgres://sluice:***@db:5432/sluice")
      assert.include(backup.message, postgresCommands.backup)
      assert.notInclude(backup.message, "secret")
      const restore = yield* Effect.flip(
        runRestore({ file: "/b.db", dataDir: "/data", force: true }).pipe(withUrl(url))
      )
      assert.instanceOf(restore, BackupUnsupported)
      assert.include(restore.message, "Stop every Sluice instance")
      assert.include(restore.message, postgresCommands.restore)
    })
  )
})

describe.skipIf(postgresBin === undefined)(postgresTitle("the store"), () => {
  layer(Server.layer, { timeout: "60 seconds" })((it) => {
    it.scoped("a connection that fails names the URL without its password, the reason and what to do", () =>
      Effect.gen(function* () {
        const server = yield* Server
        const refused = yield* Effect.flip(opened(`postgres://sluice:secret@127.0.0.1:${yield* closedPort}/x`))
        assert.strictEqual(refused._tag, "StorageError")
        assert.match(refused.message, /cannot connect to PostgreSQL at postgres:\/\/sluice:\*\*\*@127\.0\.0\.1:\d+\/x/)
        assert.include(refused.message, "ECONNREFUSED")
        assert.notInclude(refused.message, "secret")
        assert.include(Postgres.adviceFor(refused.message), "start PostgreSQL")
        const missing = yield* Effect.flip(opened(server.url("nope")))
        assert.include(missing.message, 'database "nope" does not exist')
        assert.include(Postgres.adviceFor(missing.message), "createdb")
      })
    )

    it.scoped("instances starting together on an empty database migrate it once", () =>
      Effect.gen(function* () {
        const url = yield* (yield* Server).createDatabase()
        const [first] = yield* Effect.all([opened(url), opened(url), opened(url)], { concurrency: "unbounded" })
        const sql = first!.unsafeMap.get(SqlClient.SqlClient.key) as SqlClient.SqlClient
        const applied = yield* sql<{ n: string }>`SELECT count(*) AS n FROM effect_sql_migrations`
        const files = readdirSync(join(import.meta.dirname, "../../src/Store/migrations")).filter((f) =>
          /^\d{4}_/.test(f)
        )
        assert.strictEqual(Number(applied[0]!.n), files.length)
      })
    )

    it.scoped("startup checks: migrations and version on a live server; a dead one fails, saying why", () =>
      Effect.gen(function* () {
        const server = yield* Server
        const url = yield* server.createDatabase()
        const empty = yield* outcomes("/unused").pipe(withUrl(url))
        assert.match(empty.get("database-migrations")!.detail, /0 of \d+ migrations applied; 1_episodes, .* at start/)
        yield* opened(url)
        const live = yield* outcomes("/unused").pipe(withUrl(url))
        assert.match(live.get("database-migrations")!.detail, /^postgres:\/\/postgres@.*: all \d+ migrations applied/)
        assert.isTrue(live.get("database-integrity")!.skipped)
        assert.match(live.get("database-version")!.detail, /^PostgreSQL 1\d\./)
        assert.isTrue(live.get("database-version")!.ok)
        const dead = yield* outcomes("/unused").pipe(withUrl(`postgres://u:pw@127.0.0.1:${yield* closedPort}/x`))
        const failed = dead.get("database-migrations")!
        assert.isFalse(failed.ok)
        assert.match(
          failed.detail,
          /cannot connect to PostgreSQL at postgres:\/\/u:\*\*\*@127\.0\.0\.1:\d+\/x: .*ECONNREFUSED/
        )
        assert.include(failed.fix, "start PostgreSQL")
      })
    )

    it.scoped("the key store counts on PostgreSQL; pg_dump and pg_restore, as the error names them, copy it", () =>
      Effect.gen(function* () {
        const server = yield* Server
        const url = yield* server.createDatabase()
        const key = { id: "k1", name: "ci", scopes: ["inference" as const], limits: {}, createdAt: 1, revokedAt: null }
        yield* Effect.flatMap(KeysRepo, (keys) => keys.insert({ ...key, secretHash: "ef".repeat(32) })).pipe(
          Effect.provide(KeysRepo.Default.pipe(Layer.provide(Store.layerPg({ url: Redacted.make(url) }))))
        )
        assert.strictEqual(yield* activeKeys("/unused").pipe(withUrl(url)), 1)

        const dir = mkdtempSync(join(tmpdir(), "sluice-pgdump-"))
        const shell = (command: string, database: string) =>
          execFileSync("sh", ["-c", command], {
            cwd: dir,
            env: { ...process.env, PATH: `${postgresBin}:${process.env.PATH}`, SLUICE_DATABASE_URL: database }
          })
        shell(postgresCommands.backup, url)
        const [dump] = readdirSync(dir)
        assert.match(dump!, /^sluice-\d{8}-\d{6}\.dump$/)
        const copy = yield* server.createDatabase()
        shell(postgresCommands.restore.replace("sluice-YYYYMMDD-HHMMSS.dump", dump!), copy)
        const restored = yield* Effect.flatMap(KeysRepo, (keys) => keys.list).pipe(
          Effect.provide(KeysRepo.Default.pipe(Layer.provide(Store.layerPg({ url: Redacted.make(copy) }))))
        )
        assert.deepStrictEqual(restored, [{ ...key, secretHash: "ef".repeat(32) }])
      })
    )

    // Last: it takes the file's server down and back up.
    it.scoped("health says postgres, and the gauge follows the server down and back up", () =>
      Effect.gen(function* () {
        const server = yield* Server
        const context = yield* opened(yield* server.createDatabase())
        const component = HealthComponents.database(context.unsafeMap.get(SqlClient.SqlClient.key))
        const ok = yield* component.check
        assert.deepStrictEqual(ok, {
          status: "ok",
          detail: { enabled: true, kind: "postgres", read: true, write: true }
        })
        assert.strictEqual(yield* up, 1)
        yield* server.stop
        const down = yield* component.check
        assert.strictEqual(down.status, "down")
        assert.strictEqual(down.detail.kind, "postgres")
        assert.include(String(down.detail.reason), "the database does not answer")
        assert.strictEqual(yield* up, 0)
        yield* server.start
        assert.strictEqual((yield* component.check).status, "ok", "the pool reconnects by itself")
        assert.strictEqual(yield* up, 1)
      })
    )
  })
})
