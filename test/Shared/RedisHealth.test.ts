/** The `redis` health component: absent without Redis, ok while it answers, degraded (never down) while away. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import type { Result } from "../../src/Observability/Health.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import * as Redis from "../../src/Shared/Redis.js"
import * as RedisHealth from "../../src/Shared/RedisHealth.js"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"

const up = Effect.map(Metric.value(Metric.tagged(Metrics.sharedStoreUp, "store", "redis")), (s) => s.value)

describe("RedisHealth", () => {
  it.effect("no component without Redis", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* RedisHealth.components("2 seconds"), [])
    })
  )

  it.scopedLive.skipIf(redisBinary === undefined)(
    `ok, then degraded naming the fallback and the redacted URL, then ok again (${redisBinary === undefined ? skipReason : "redis-server"})`,
    () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const context = yield* Layer.build(Redis.layerConnection({ url: server.url }))
        const [component] = yield* Effect.provide(RedisHealth.components("2 seconds"), context)
        assert.strictEqual(component!.name, "redis")
        assert.isFalse(component!.critical)
        const check = Effect.provide(component!.check, context)
        const until = (status: Result["status"]) =>
          Effect.repeat(Effect.zipLeft(check, Effect.sleep("20 millis")), {
            until: (r) => r.status === status,
            times: 500
          })
        assert.deepStrictEqual((yield* until("ok")).detail, { url: server.url, fallback: "local", answers: true })
        assert.strictEqual(yield* up, 1)
        yield* server.stop
        const away = yield* until("degraded")
        assert.strictEqual(away.detail.fallback, "local")
        assert.include(away.detail.reason as string, `Redis at ${server.url} does not answer`)
        assert.include(away.detail.reason as string, "fallback local in force")
        assert.strictEqual(yield* up, 0)
        yield* server.start
        yield* until("ok")
        assert.strictEqual(yield* up, 1)
      })
  )
})
