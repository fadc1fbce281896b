/**
 * The engine's rate limits kept in a real Redis (Llm/RateLimiterShared.ts): two buckets of one backend on two
 * connections stand for two instances. Real time (`it.scopedLive`): the buckets refill on Redis's clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Metric, Option, Ref } from "effect"
import { RateLimited, SharedStoreUnavailable } from "../../src/Domain/LlmError.js"
import { type Events, type Limits, makeBucketWith } from "../../src/Llm/RateLimiter.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import * as Redis from "../../src/Shared/Redis.js"
import * as RedisLimiter from "../../src/Shared/RedisLimiter.js"
import { outcome, tally } from "../support/Outcomes.js"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"

const fallbackCount = Effect.map(Metric.value(Metric.tagged(Metrics.redisFallbacks, "use", "limits")), (s) => s.count)

/** An "instance": a connection, and its bucket of backend `scope` counting its waits. */
const instance = (url: string, scope: string, limits: Limits, fallback: Redis.Fallback = "local") =>
  Effect.gen(function* () {
    const connection = yield* Redis.connect({ url, fallback })
    assert.isTrue(yield* Redis.ready(connection, "5 seconds"))
    const waits = yield* Ref.make(0)
    const events: Events = { waited: Ref.update(waits, (n) => n + 1), rejected: () => Effect.void }
    const bucket = yield* makeBucketWith(scope, limits, events).pipe(
      Effect.provideService(Redis.Redis, Option.some(connection))
    )
    return { connection, bucket, waits } as const
  })

describe.skipIf(redisBinary === undefined)(
  `RateLimiter over Redis (${redisBinary === undefined ? skipReason : "redis-server"})`,
  () => {
    it.scopedLive("two instances together admit exactly the burst; the rest are refused with Retry-After", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const limits = { requestsPerSecond: 10, burst: 10, maxWait: 0 }
        const [a, b] = [
          yield* instance(server.url, "http://b:1", limits),
          yield* instance(server.url, "http://b:1", limits)
        ]
        const results = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b)),
          (at) => Effect.either(at.bucket.take),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(tally(results.map((r) => (Either.isRight(r) ? "admitted" : "refused"))), {
          admitted: 10,
          refused: 30
        })
        for (const r of results)
          if (Either.isLeft(r)) {
            assert.instanceOf(r.left, RateLimited)
            assert.isAtMost(r.left.retryAfterMs, 3_000)
          }
        assert.strictEqual((yield* a.bucket.snapshot).waiting, 0)
      })
    )

    it.scopedLive(
      "callers within maxWait reserve their turn and wait; model tokens are charged in the background",
      () =>
        Effect.gen(function* () {
          const server = yield* redisServer
          const limits: Limits = { requestsPerSecond: 50, burst: 1, tokensPerMinute: 600, maxWait: "2 seconds" }
          const [a, b] = [
            yield* instance(server.url, "http://w:1", limits),
            yield* instance(server.url, "http://w:1", limits)
          ]
          const outcomes = yield* Effect.forEach([a, b, a, b, a], (at) => outcome(at.bucket.take), {
            concurrency: "unbounded"
          })
          assert.deepStrictEqual(tally(outcomes), { admitted: 5 })
          assert.strictEqual((yield* Ref.get(a.waits)) + (yield* Ref.get(b.waits)), 4, "all but the first waited")
          yield* a.bucket.charge(1_200)
          const bucket = RedisLimiter.keysOf(a.connection, "rate:http://w:1").bucket
          while (Number(yield* a.connection.run("limits", (c) => c.hget(bucket, "t"))) >= 0)
            yield* Effect.sleep("5 millis")
          const refused = yield* Effect.flip(b.bucket.take)
          assert.isTrue(refused instanceof RateLimited && refused.limit === "tokens")
        })
    )

    it.scopedLive("an unlimited bucket never asks Redis", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const a = yield* instance(server.url, "http://u:1", { requestsPerSecond: Infinity })
        yield* server.stop
        const before = yield* fallbackCount
        assert.strictEqual(yield* outcome(a.bucket.take), "admitted")
        assert.strictEqual((yield* fallbackCount) - before, 0)
      })
    )

    it.scopedLive("Redis away: this process's bucket decides (counted), or with closed the call is refused", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const limits = { requestsPerSecond: 1, burst: 2, maxWait: 0 }
        const local = yield* instance(server.url, "http://f:1", limits)
        const closed = yield* instance(server.url, "http://f:1", limits, "closed")
        assert.strictEqual(yield* outcome(local.bucket.take), "admitted")
        yield* server.stop
        const before = yield* fallbackCount
        const away = yield* Effect.forEach([1, 2, 3], () => outcome(local.bucket.take))
        assert.deepStrictEqual(away, ["admitted", "admitted", "requests"])
        const refused = yield* Effect.flip(closed.bucket.take)
        assert.instanceOf(refused, SharedStoreUnavailable)
        assert.strictEqual((refused as SharedStoreUnavailable).status, 503)
        assert.strictEqual((yield* fallbackCount) - before, 4)
        yield* server.start
        assert.isTrue(yield* Redis.ready(closed.connection, "10 seconds"))
        assert.strictEqual(yield* outcome(closed.bucket.take), "admitted")
        assert.strictEqual((yield* fallbackCount) - before, 4)
      })
    )
  }
)
