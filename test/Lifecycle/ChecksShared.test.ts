/** The startup checks of the shared Redis: absent without SLUICE_REDIS_URL, a warning when away, fatal when old. */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { gatherShared, sharedChecks } from "../../src/Lifecycle/ChecksShared.js"
import type { Row } from "../../src/Lifecycle/StartupValidator.js"
import { closedPort } from "../Cli/process.js"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** The checks' rows for the facts gathered under `env`. */
const rows = (env: Record<string, string>) =>
  Effect.gen(function* () {
    const facts = yield* gatherShared("2 seconds").pipe(withEnv(env))
    return yield* Effect.forEach(
      sharedChecks(facts),
      (check) =>
        Effect.map(check.run, (o): Row => ({
          name: check.name,
          severity: check.severity,
          result: o.skipped ? "skip" : o.ok ? "pass" : "fail",
          detail: o.detail,
          fix: o.fix
        })),
      { concurrency: 1 }
    )
  })

describe("ChecksShared", () => {
  it.scopedLive("no checks without SLUICE_REDIS_URL", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* rows({}), [])
    })
  )

  it.scopedLive("Redis away: a warning naming the redacted URL and the fallback; the version is skipped", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const found = yield* rows({
        SLUICE_REDIS_URL: `redis://app:secret@127.0.0.1:${port}`,
        SLUICE_REDIS_FALLBACK: "closed"
      })
      assert.deepStrictEqual(
        found.map((r) => [r.name, r.severity, r.result]),
        [
          ["redis-reachable", "warning", "fail"],
          ["redis-credentials", "fatal", "skip"],
          ["redis-version", "fatal", "skip"]
        ]
      )
      assert.include(found[0]!.detail, `redis://app:***@127.0.0.1:${port}`)
      assert.notInclude(found[0]!.detail, "secret")
      assert.include(found[0]!.detail, "SLUICE_REDIS_FALLBACK=closed")
      assert.include(found[0]!.fix!, "SLUICE_REDIS_URL")
    })
  )

  it("a Redis older than 6.2 is fatal, with what to do", () => {
    const [, , version] = sharedChecks({ _tag: "Answers", url: "redis://10.0.0.5:6379", version: "6.0.16" })
    const outcome = Effect.runSync(version!.run)
    assert.strictEqual(version!.severity, "fatal")
    assert.isFalse(outcome.ok)
    assert.include(outcome.detail, "Redis 6.0.16 at redis://10.0.0.5:6379 is older than 6.2")
    assert.include(outcome.fix!, "upgrade Redis")
    assert.isTrue(Effect.runSync(sharedChecks({ _tag: "Answers", url: "u", version: "6.2.0" })[2]!.run).ok)
  })

  it("credentials Redis refuses are fatal (a configuration error, not an outage)", () => {
    const facts = {
      _tag: "Unreachable",
      url: "redis://app:***@10.0.0.5:6379",
      fallback: "local",
      error: "WRONGPASS invalid username-password pair or user is disabled"
    } as const
    const [reachable, credentials] = sharedChecks(facts)
    assert.isFalse(Effect.runSync(reachable!.run).ok)
    const outcome = Effect.runSync(credentials!.run)
    assert.strictEqual(credentials!.severity, "fatal")
    assert.isFalse(outcome.ok)
    assert.include(outcome.detail, "refuses the credentials: WRONGPASS")
    assert.include(outcome.fix!, "SLUICE_REDIS_URL")
  })

  it.scopedLive.skipIf(redisBinary === undefined)(
    `a running Redis passes both (${redisBinary === undefined ? skipReason : "redis-server"})`,
    () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const found = yield* rows({ SLUICE_REDIS_URL: server.url })
        assert.deepStrictEqual(
          found.map((r) => [r.name, r.result]),
          [
            ["redis-reachable", "pass"],
            ["redis-credentials", "pass"],
            ["redis-version", "pass"]
          ]
        )
        assert.match(found[2]!.detail, new RegExp(`^Redis \\d+\\.\\d+\\.\\d+ at ${server.url}$`))
      })
  )
})
