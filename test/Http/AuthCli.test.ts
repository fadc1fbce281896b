/** `sluice keys create|list|revoke` in-process, the keys it makes at the gateway, and the `auth-configured` check. */
import { Command } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { keys } from "../../src/Cli/Keys.js"
import * as Auth from "../../src/Http/Auth.js"
import { systemChecks } from "../../src/Lifecycle/Checks.js"
import { authConfigured, unprotected } from "../../src/Lifecycle/ChecksAuth.js"
import type { Context } from "../../src/Lifecycle/StartupValidator.js"
import * as Store from "../../src/Store/Store.js"
import { bearer, harness } from "./AuthFixtures.js"

const tempDir = () => join(mkdtempSync(join(tmpdir(), "sluice-keys-")), "data")

/** Runs `sluice ...args` in-process, `keys` mounted as in main.ts; what it printed, or the failure. */
const cli = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const console = yield* Effect.console
    const capture = {
      ...console,
      log: (...parts: ReadonlyArray<unknown>) => Effect.sync(() => void lines.push(parts.join(" "))),
      error: (...parts: ReadonlyArray<unknown>) => Effect.sync(() => void lines.push(parts.join(" ")))
    }
    const sluice = Command.make("sluice").pipe(Command.withSubcommands([keys]))
    const run = Command.run(sluice, { name: "sluice", version: "0.0.0" })
    yield* run(["node", "sluice", ...args]).pipe(Effect.withConsole(capture), Effect.provide(NodeContext.layer))
    return lines.join("\n")
  })

/** The gateway's middleware over the database in `dataDir`, bound to loopback. */
const gatewayOver = (dataDir: string) =>
  Auth.layer({ host: "127.0.0.1", apiKeys: [] }).pipe(Layer.provide(Store.layerSqlite({ dataDir })))

const context = (host: string, dataDir: string, apiKeys = false): Context => ({
  host,
  port: 0,
  mode: "ollama",
  urls: [],
  dataDir,
  engine: { settings: {}, backend: { slots: 8, rateLimit: {} } },
  requirements: { chatModels: [], embedModels: [] },
  limits: { minFreeDiskMb: 1 },
  health: { interval: Duration.seconds(10), timeout: Duration.seconds(2) },
  apiKeys,
  telemetryUrl: Option.none()
})

const check = (host: string, dataDir: string, apiKeys = false) => authConfigured(context(host, dataDir, apiKeys)).run

describe("sluice keys", () => {
  it.effect("create prints the key once; list shows it without the secret; revoke makes the gateway refuse it", () => {
    const dataDir = tempDir()
    return Effect.gen(function* () {
      assert.include(yield* cli(["keys", "list", "--data-dir", dataDir]), "no API keys")

      const created = yield* cli([
        "keys",
        "create",
        "--name",
        "ci bot",
        "--scopes",
        "inference,agents",
        "--rpm",
        "60",
        "--concurrency",
        "2",
        "--priority",
        "batch",
        "--data-dir",
        dataDir
      ])
      const key = /sk-sluice-([A-Za-z0-9]{12})-[A-Za-z0-9_-]{43}/.exec(created)
      assert.isNotNull(key, created)
      const [secret, id] = [key![0], key![1]!]
      assert.include(created, `created API key ${id} (ci bot): scopes inference,agents`)
      assert.include(created, "rpm 60, concurrency 2, priority batch")
      assert.include(created, "only time the key is shown")

      const listed = yield* cli(["keys", "list", "--data-dir", dataDir])
      assert.match(listed, /ID\s+NAME\s+SCOPES\s+LIMITS\s+CREATED\s+REVOKED/)
      assert.match(listed, new RegExp(`${id}\\s+ci bot\\s+inference,agents\\s+rpm 60, concurrency 2, priority batch`))
      assert.notInclude(listed, secret.slice(-43))

      const call = yield* harness()
      const ok = yield* call("/api/chat", bearer(secret))
      assert.strictEqual(ok.status, 200)
      assert.deepStrictEqual(ok.body.options, { priority: "batch" })

      assert.include(yield* cli(["keys", "revoke", id, "--data-dir", dataDir]), `revoked API key ${id} (ci bot)`)
      assert.include(yield* cli(["keys", "revoke", id, "--data-dir", dataDir]), "was already revoked")
      const revoked = yield* cli(["keys", "list", "--data-dir", dataDir])
      assert.match(revoked, new RegExp(`^${id}\\s.*Z\\s+1970-01-01T00:00:00.000Z$`, "m"), "REVOKED is set")
      assert.strictEqual((yield* call("/api/chat", bearer(secret))).status, 401)
    }).pipe(Effect.provide(gatewayOver(dataDir)))
  })

  it.effect("create refuses an unknown scope and a non-positive limit; revoke refuses an unknown id", () =>
    Effect.gen(function* () {
      const dataDir = tempDir()
      const scope = yield* Effect.flip(
        cli(["keys", "create", "--name", "x", "--scopes", "root", "--data-dir", dataDir])
      )
      assert.include(String(scope), "unknown scope(s) root")
      const rpm = yield* Effect.flip(cli(["keys", "create", "--name", "x", "--rpm", "0", "--data-dir", dataDir]))
      assert.include(String(rpm), "--rpm must be a positive whole number")
      yield* cli(["keys", "create", "--name", "x", "--data-dir", dataDir])
      const unknown = yield* Effect.flip(cli(["keys", "revoke", "AAAAAAAAAAAA", "--data-dir", dataDir]))
      assert.include(String(unknown), "no API key AAAAAAAAAAAA")
    })
  )
})

describe("startup check auth-configured", () => {
  it.effect("refuses 0.0.0.0 without a key, passes with one in the store or the environment, or on loopback", () =>
    Effect.gen(function* () {
      const dataDir = tempDir()
      const none = yield* check("0.0.0.0", dataDir)
      assert.isFalse(none.ok)
      assert.strictEqual(
        none.detail,
        "Sluice is bound to 0.0.0.0, reachable beyond this machine, but no API key is configured: " +
          "create one with `sluice keys create --name <name>` or set SLUICE_API_KEY"
      )
      assert.strictEqual(none.detail, unprotected("0.0.0.0"))
      assert.isTrue((yield* check("127.0.0.1", dataDir)).ok)
      assert.isTrue((yield* check("0.0.0.0", dataDir, true)).ok)

      // a database without any key yet (migrated, table present) is still no key
      yield* cli(["keys", "list", "--data-dir", dataDir])
      yield* Effect.provide(Effect.void, Store.layerSqlite({ dataDir }))
      assert.isFalse((yield* check("0.0.0.0", dataDir)).ok)

      const created = yield* cli(["keys", "create", "--name", "ops", "--scopes", "admin", "--data-dir", dataDir])
      const id = /sk-sluice-([A-Za-z0-9]{12})-/.exec(created)![1]!
      const keyed = yield* check("0.0.0.0", dataDir)
      assert.isTrue(keyed.ok)
      assert.include(keyed.detail, "1 API key(s) in the key store")

      yield* cli(["keys", "revoke", id, "--data-dir", dataDir])
      assert.isFalse((yield* check("0.0.0.0", dataDir)).ok, "a revoked key does not count")
    })
  )

  it("is the check the startup validator runs", () => {
    const names = systemChecks(context("0.0.0.0", tempDir())).map((c) => c.name)
    assert.include(names, "auth-configured")
  })
})
