/**
 * Per-key limits kept in a real Redis (Http/AuthLimits.ts over Shared/RedisLimiter.ts): two registries on two
 * connections stand for two instances. Real time (`it.scopedLive`): the buckets refill on Redis's clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Metric, Option } from "effect"
import { SharedStoreUnavailable } from "../../src/Domain/LlmError.js"
import * as Auth from "../../src/Http/Auth.js"
import { KeyLimited, makeRegistry } from "../../src/Http/AuthLimits.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import * as Redis from "../../src/Shared/Redis.js"
import * as RedisLimiter from "../../src/Shared/RedisLimiter.js"
import * as Store from "../../src/Store/Store.js"
import type { KeyLimits } from "../../src/Store/KeysRepo.js"
import { outcome, tally } from "../support/Outcomes.js"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"
import { bearer, createKey, harness } from "./AuthFixtures.js"

const fallbacks = Metric.tagged(Metrics.redisFallbacks, "use", "limits")
const fallbackCount = Effect.map(Metric.value(fallbacks), (state) => state.count)

/** An "instance": a connection to the server and a registry of key limiters over it. */
const instance = (url: string, fallback: Redis.Fallback = "local") =>
  Effect.gen(function* () {
    const connection = yield* Redis.connect({ url, fallback })
    assert.isTrue(yield* Redis.ready(connection, "5 seconds"))
    const registry = yield* makeRegistry.pipe(Effect.provideService(Redis.Redis, Option.some(connection)))
    const request = <A, E>(id: string, limits: KeyLimits, effect: Effect.Effect<A, E> = Effect.void as never) =>
      registry
        .withLimiter(id, limits, (limiter) => limiter.run(() => effect))
        .pipe(Effect.provideService(Redis.Redis, Option.some(connection)))
    return { connection, registry, request } as const
  })

describe.skipIf(redisBinary === undefined)(
  `AuthLimits over Redis (${redisBinary === undefined ? skipReason : "redis-server"})`,
  () => {
    it.scopedLive("two instances together admit exactly rpm of many concurrent requests", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const [a, b] = [yield* instance(server.url), yield* instance(server.url)]
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b)),
          (at) => outcome(at.request("k", { rpm: 50 })),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(tally(outcomes), { admitted: 50, requests: 150 })
      })
    )

    it.scopedLive("concurrency is one count across instances; a slot comes back when its call ends", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const [a, b] = [yield* instance(server.url), yield* instance(server.url)]
        const limits = { concurrency: 2 }
        const gate = yield* Deferred.make<void>()
        const held = yield* Effect.forkScoped(
          Effect.all([a.request("c", limits, Deferred.await(gate)), b.request("c", limits, Deferred.await(gate))], {
            concurrency: "unbounded"
          })
        )
        const leases = RedisLimiter.keysOf(a.connection, "key:c").leases
        while ((yield* a.connection.run("limits", (c) => c.zcard(leases))) < 2) yield* Effect.sleep("5 millis")
        assert.strictEqual(yield* outcome(a.request("c", limits)), "concurrency")
        assert.strictEqual(yield* outcome(b.request("c", limits)), "concurrency")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(held)
        assert.strictEqual(yield* outcome(b.request("c", limits)), "admitted")
        assert.strictEqual(yield* a.connection.run("limits", (c) => c.zcard(leases)), 0)
      })
    )

    it.scopedLive("Retry-After and the headers come from the shared bucket; every key expires", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const a = yield* instance(server.url)
        yield* Effect.forEach(Array.from({ length: 60 }), () => a.request("r", { rpm: 60 }), { concurrency: 8 })
        const refused = yield* Effect.flip(a.request("r", { rpm: 60 }))
        assert.instanceOf(refused, KeyLimited)
        const limited = refused as KeyLimited
        assert.strictEqual(limited.limit, "requests")
        // a sliding minute: a request is admitted again once the oldest of the 60 is a minute old
        assert.isAtMost(limited.retryAfterMs, 60_000)
        assert.isAbove(limited.retryAfterMs, 55_000)
        assert.strictEqual(limited.headers["x-ratelimit-limit-requests"], "60")
        assert.strictEqual(limited.headers["x-ratelimit-remaining-requests"], "0")
        assert.match(limited.headers["x-ratelimit-reset-requests"]!, /^(59|60)s$/)

        // model tokens: an answer of 1200 tokens puts a 600 tpm key 600 in debt, a minute to refill to zero
        yield* a.registry
          .withLimiter("t", { tpm: 600 }, (limiter) => limiter.charge(1_200))
          .pipe(Effect.provideService(Redis.Redis, Option.some(a.connection)))
        const debt = (yield* Effect.flip(a.request("t", { tpm: 600 }))) as KeyLimited
        assert.strictEqual(debt.limit, "tokens")
        assert.isAtMost(debt.retryAfterMs, 60_000)
        assert.isAbove(debt.retryAfterMs, 59_000)

        const gate = yield* Deferred.make<void>()
        const held = yield* Effect.forkScoped(a.request("l", { concurrency: 1 }, Deferred.await(gate)))
        const leases = RedisLimiter.keysOf(a.connection, "key:l").leases
        while ((yield* a.connection.run("limits", (c) => c.zcard(leases))) < 1) yield* Effect.sleep("5 millis")
        const keys = yield* a.connection.run("limits", (c) => c.keys("*"))
        assert.sameMembers(keys, ["sluice:limits:{key:r}:requests", "sluice:limits:{key:t}", leases])
        const ttl = (key: string) => a.connection.run("limits", (c) => c.pttl(key))
        // a window expires a minute after its last request, a bucket once it would be full again (plus a second),
        // the leases a lease's time-to-live after the last one was taken or renewed
        assert.isAtMost(yield* ttl("sluice:limits:{key:r}:requests"), 60_000)
        assert.isAbove(yield* ttl("sluice:limits:{key:r}:requests"), 55_000)
        assert.isAtMost(yield* ttl("sluice:limits:{key:t}"), 121_000)
        assert.isAbove(yield* ttl("sluice:limits:{key:t}"), 119_000)
        assert.isAtMost(yield* ttl(leases), RedisLimiter.leaseDefaults.ttlMs)
        assert.isAbove(yield* ttl(leases), 0)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(held)
        assert.strictEqual(yield* a.connection.run("limits", (c) => c.exists(leases)), 0, "the last lease ended")
      })
    )

    it.scopedLive("a crashed instance's lease expires, and its slot comes back; a renewed one stays", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const a = yield* instance(server.url)
        const limits = { requestsPerSecond: undefined, burst: 0, tokensPerMinute: undefined, maxWaitMs: 0 }
        const lease = (id: string) => ({ id, limit: 1, ttlMs: 300 })
        // "crashed": took its lease and never renews nor ends it
        assert.strictEqual((yield* RedisLimiter.take(a.connection, "key:x", limits, lease("dead")))._tag, "Admitted")
        const busy = yield* RedisLimiter.take(a.connection, "key:x", limits, lease("live"))
        assert.isTrue(busy._tag === "Refused" && busy.limit === "concurrency")
        yield* Effect.sleep("400 millis")
        assert.strictEqual((yield* RedisLimiter.take(a.connection, "key:x", limits, lease("live")))._tag, "Admitted")
        // a renewed lease is held past its first time-to-live
        yield* Effect.sleep("200 millis")
        yield* RedisLimiter.renew(a.connection, "key:x", lease("live"))
        yield* Effect.sleep("200 millis")
        const still = yield* RedisLimiter.take(a.connection, "key:x", limits, lease("other"))
        assert.isTrue(still._tag === "Refused" && still.limit === "concurrency")
      })
    )

    it.scopedLive("Redis away: local decides (counted), and shared decisions resume when it is back", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const a = yield* instance(server.url)
        const limits = { rpm: 5 }
        assert.strictEqual(yield* outcome(a.request("f", limits)), "admitted")
        yield* server.stop
        const before = yield* fallbackCount
        // this process's own bucket: a fresh one, 5 at once
        const away = yield* Effect.forEach(Array.from({ length: 6 }), () => outcome(a.request("f", limits)))
        assert.deepStrictEqual(tally(away), { admitted: 5, requests: 1 })
        assert.strictEqual((yield* fallbackCount) - before, 6)
        yield* server.start
        assert.isTrue(yield* Redis.ready(a.connection, "10 seconds"))
        // a fresh (empty) Redis: a full shared bucket, decided there again
        assert.strictEqual(yield* outcome(a.request("f", limits)), "admitted")
        const window = RedisLimiter.keysOf(a.connection, "key:f").window
        assert.strictEqual(yield* a.connection.run("limits", (c) => c.zcard(window)), 1)
        assert.strictEqual((yield* fallbackCount) - before, 6)
      })
    )

    it.scopedLive("Redis away with SLUICE_REDIS_FALLBACK=closed: the request is refused with 503", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const connection = yield* Redis.connect({ url: server.url, fallback: "closed" })
        assert.isTrue(yield* Redis.ready(connection, "5 seconds"))
        const withRedis = Effect.provideService(Redis.Redis, Option.some(connection))
        const auth = Auth.layer({ host: "127.0.0.1", apiKeys: [] }).pipe(Layer.provideMerge(Store.layerMemory))
        yield* Effect.gen(function* () {
          const key = yield* createKey("closed", ["inference"], { rpm: 10 })
          const call = yield* harness()
          const fine = yield* call("/api/chat", bearer(key.key))
          assert.strictEqual(fine.status, 200)
          assert.strictEqual(fine.headers.get("x-ratelimit-remaining-requests"), "9")
          yield* server.stop
          const before = yield* fallbackCount
          const refused = yield* call("/api/chat", bearer(key.key))
          assert.strictEqual(refused.status, 503)
          assert.include(refused.body.error, "Redis does not answer and SLUICE_REDIS_FALLBACK=closed")
          assert.strictEqual((yield* fallbackCount) - before, 1)
          const direct = yield* Effect.flip(
            (yield* makeRegistry).withLimiter("x", { rpm: 1 }, (limiter) => limiter.run(() => Effect.void))
          )
          assert.instanceOf(direct, SharedStoreUnavailable)
        }).pipe(Effect.provide(auth), withRedis)
      })
    )
  }
)
