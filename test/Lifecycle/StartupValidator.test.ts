/** Startup validation against the simulator: a sound setup passes, each misconfiguration is named with a fix. */
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as StartupValidator from "../../src/Lifecycle/StartupValidator.js"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import * as Store from "../../src/Store/Store.js"
import { closedPort } from "../Cli/process.js"

const tempDir = () => mkdtempSync(join(tmpdir(), "sluice-validate-"))

const context = (overrides: Partial<StartupValidator.Context>): StartupValidator.Context => ({
  host: "127.0.0.1",
  port: 0,
  mode: "ollama",
  urls: [],
  dataDir: tempDir(),
  engine: {
    settings: {
      cache: { ttl: "10 minutes", maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 },
      retry: { maxRetries: 3 },
      timeouts: { deadline: "10 minutes" }
    },
    backend: { slots: 8, rateLimit: {} }
  },
  requirements: { chatModels: [], embedModels: [] },
  limits: { minFreeDiskMb: 1 },
  health: { interval: Duration.seconds(10), timeout: Duration.seconds(2) },
  apiKeys: false,
  telemetryUrl: Option.none(),
  ...overrides
})

const simulator = Effect.map(Simulator.make({ port: 0, host: "127.0.0.1", config: fast() }), (s) => s.url)

const byName = (rows: ReadonlyArray<StartupValidator.Row>) => new Map(rows.map((r) => [r.name, r]))

const failedNames = (rows: ReadonlyArray<StartupValidator.Row>) =>
  rows.filter((r) => r.result === "fail").map((r) => r.name)

/** A migrated database in `dataDir`, with `pins` in memory_namespaces. */
const seedDatabase = (dataDir: string, pins: ReadonlyArray<readonly [string, string, number]> = []) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    for (const [namespace, model, dim] of pins)
      yield* sql`INSERT INTO memory_namespaces (namespace, model, dim, created_at) VALUES (${namespace}, ${model}, ${dim}, 0)`
  }).pipe(Effect.provide(Store.layerSqlite({ dataDir })), Effect.orDie)

describe("StartupValidator", () => {
  it.scopedLive("against the simulator with a fresh data directory, every fatal check passes", () =>
    Effect.gen(function* () {
      const url = yield* simulator
      const requirements = { chatModels: ["llama3.2"], embedModels: ["nomic-embed-text"] }
      const rows = yield* StartupValidator.validate(context({ urls: [url], requirements }))
      assert.isAtLeast(rows.length, 15)
      assert.strictEqual(new Set(rows.map((r) => r.name)).size, rows.length, "check names are unique")
      assert.deepStrictEqual(StartupValidator.failedFatal(rows), [])
      const rowsByName = byName(rows)
      assert.strictEqual(rowsByName.get("chat-models")!.result, "pass")
      assert.strictEqual(rowsByName.get("embedding-models")!.result, "pass")
      assert.strictEqual(rowsByName.get("backends-reachable")!.result, "pass")
      assert.include(rowsByName.get("backend-version")!.detail, "0.12.6")
      const ran = yield* StartupValidator.run(context({ urls: [url] }), { print: "problems" })
      assert.strictEqual(ran.length, rows.length)
    })
  )

  it.scopedLive("an unwritable data dir, an unreachable backend and a missing model: each failed, the run fails", () =>
    Effect.gen(function* () {
      const url = yield* simulator
      const dead = `http://127.0.0.1:${yield* closedPort}`
      const file = join(tempDir(), "a-file")
      writeFileSync(file, "not a directory")
      const ctx = context({
        urls: [url, dead],
        dataDir: join(file, "data"),
        requirements: { chatModels: ["llama3.2", "no-such-model"], embedModels: [] }
      })
      const rows = yield* StartupValidator.validate(ctx)
      assert.deepStrictEqual(failedNames(rows), ["data-dir-writable", "backends-reachable", "chat-models"])
      const rowsByName = byName(rows)
      assert.include(rowsByName.get("backends-reachable")!.detail, dead)
      assert.include(rowsByName.get("chat-models")!.detail, "no-such-model:latest")
      assert.notInclude(rowsByName.get("chat-models")!.detail, "llama3.2")
      for (const name of failedNames(rows)) assert.isString(rowsByName.get(name)!.fix, `${name} says what to do`)

      const error = yield* Effect.flip(StartupValidator.run(ctx, { print: "problems" }))
      assert.strictEqual(error._tag, "StartupFailed")
      assert.deepStrictEqual(
        error.failed.map((r) => r.name),
        ["data-dir-writable", "backends-reachable", "chat-models"]
      )
      assert.include(error.message, "what to do: ollama pull no-such-model:latest")
    })
  )

  it.scopedLive("auto mode with no Ollama: unreachable is a warning, the simulator stands in and is warned about", () =>
    Effect.gen(function* () {
      const dead = `http://127.0.0.1:${yield* closedPort}`
      const ctx = context({ mode: "auto", urls: [dead], requirements: { chatModels: ["llama3.2"], embedModels: [] } })
      const rows = byName(yield* StartupValidator.validate(ctx))
      assert.strictEqual(rows.get("backends-reachable")!.severity, "warning")
      assert.strictEqual(rows.get("backends-reachable")!.result, "fail")
      assert.strictEqual(rows.get("simulator-fallback")!.result, "fail")
      assert.strictEqual(rows.get("chat-models")!.result, "pass", "checked against the simulator serve would start")
      assert.deepStrictEqual(StartupValidator.failedFatal([...rows.values()]), [])
    })
  )

  it.scopedLive("a migrated database passes; a pinned embedding dimension the model does not have fails", () =>
    Effect.gen(function* () {
      const url = yield* simulator
      const dataDir = tempDir()
      yield* seedDatabase(dataDir, [
        ["notes", "nomic-embed-text", 768],
        ["old", "all-minilm", 1024]
      ])
      const rows = byName(yield* StartupValidator.validate(context({ urls: [url], dataDir })))
      assert.strictEqual(rows.get("database-migrations")!.result, "pass")
      assert.match(rows.get("database-migrations")!.detail, /all \d+ migrations applied/)
      assert.strictEqual(rows.get("database-integrity")!.result, "pass")
      const dimension = rows.get("embedding-dimension")!
      assert.strictEqual(dimension.result, "fail")
      assert.include(dimension.detail, "namespace old holds all-minilm vectors of 1024 dims, the backend reports 384")
      assert.notInclude(dimension.detail, "notes")
    })
  )

  it.scopedLive("a database migrated by a newer Sluice, or not a database at all, is fatal", () =>
    Effect.gen(function* () {
      const newer = tempDir()
      yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO effect_sql_migrations (migration_id, name) VALUES (99, 'future')`
      }).pipe(Effect.provide(Store.layerSqlite({ dataDir: newer })), Effect.orDie)
      const rows = byName(yield* StartupValidator.validate(context({ urls: [yield* simulator], dataDir: newer })))
      assert.strictEqual(rows.get("database-migrations")!.result, "fail")
      assert.include(rows.get("database-migrations")!.detail, "newer Sluice")

      const garbage = tempDir()
      writeFileSync(Store.databaseFile(garbage), "this is not SQLite ".repeat(100))
      const broken = byName(yield* StartupValidator.validate(context({ urls: [yield* simulator], dataDir: garbage })))
      assert.strictEqual(broken.get("database-migrations")!.result, "fail")
      assert.isString(broken.get("database-migrations")!.fix)
    })
  )

  it.scopedLive("a taken port, and a bind beyond loopback without API keys, are fatal", () =>
    Effect.gen(function* () {
      const url = yield* simulator
      const server = createServer()
      const port = yield* Effect.acquireRelease(
        Effect.async<number>((resume) => {
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as { port: number }).port)))
        }),
        () => Effect.sync(() => server.close())
      )
      const taken = byName(yield* StartupValidator.validate(context({ urls: [url], port })))
      assert.strictEqual(taken.get("listen-port-free")!.result, "fail")
      assert.include(taken.get("listen-port-free")!.detail, "EADDRINUSE")

      const open = byName(yield* StartupValidator.validate(context({ urls: [url], host: "0.0.0.0" })))
      assert.strictEqual(open.get("auth-configured")!.result, "fail")
      const keyed = byName(yield* StartupValidator.validate(context({ urls: [url], host: "0.0.0.0", apiKeys: true })))
      assert.strictEqual(keyed.get("auth-configured")!.result, "pass")
    })
  )

  it.scopedLive("limits that contradict each other are a warning; invalid values are fatal", () =>
    Effect.gen(function* () {
      const url = yield* simulator
      const base = context({ urls: [url] })
      const tight = context({
        urls: [url],
        engine: { ...base.engine, settings: { ...base.engine.settings, timeouts: { deadline: "10 seconds" } } }
      })
      const rows = byName(yield* StartupValidator.validate(tight))
      assert.strictEqual(rows.get("limits-consistent")!.result, "fail")
      assert.strictEqual(rows.get("limits-consistent")!.severity, "warning")
      assert.include(rows.get("limits-consistent")!.detail, "the retry window (30s)")

      const invalid = context({
        urls: [url],
        engine: { ...base.engine, settings: { ...base.engine.settings, cache: { maxBytes: 0 } } }
      })
      const bad = byName(yield* StartupValidator.validate(invalid))
      assert.strictEqual(bad.get("config-valid")!.result, "fail")
      assert.include(bad.get("config-valid")!.detail, "SLUICE_CACHE_MAX_BYTES must be positive")
    })
  )

  it("formats an aligned table with what to do under each failure", () => {
    const table = StartupValidator.format([
      { name: "config-valid", severity: "fatal", result: "pass", detail: "fine" },
      { name: "backends-reachable", severity: "fatal", result: "fail", detail: "down", fix: "start it" },
      { name: "telemetry-reachable", severity: "warning", result: "fail", detail: "no", fix: "start the collector" }
    ])
    const lines = table.split("\n")
    assert.match(lines[0]!, /^CHECK\s+SEVERITY\s+RESULT\s+DETAIL$/)
    const column = lines[0]!.indexOf("DETAIL")
    assert.strictEqual(lines[2]!.indexOf("down"), column)
    assert.strictEqual(lines[3]!.indexOf("what to do: start it"), column)
    assert.include(lines[2]!, "FAIL")
    assert.include(lines[4]!, "WARN")
    assert.strictEqual(lines.at(-1), "1 fatal check failed, 1 warning")
  })
})
