/** The token bucket under TestClock: burst and refill, maxWait, model tokens, fairness, keys, the service. */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Either, Fiber, Ref, TestClock } from "effect"
import { RateLimited, type SharedStoreUnavailable } from "../../src/Domain/LlmError.js"
import { makeBucket, RateLimiter } from "../../src/Llm/RateLimiter.js"
import type { Bucket } from "../../src/Llm/RateLimiter.js"

/** Starts `n` concurrent takes and returns a fiber with the TestClock times at which each was admitted. */
const startTimes = (bucket: Bucket, n: number) =>
  Effect.gen(function* () {
    const times = yield* Ref.make<ReadonlyArray<number>>([])
    const record = Effect.flatMap(Clock.currentTimeMillis, (t) => Ref.update(times, (ts) => [...ts, t]))
    const all = Effect.all(
      Array.from({ length: n }, () => bucket.limit(record)),
      { concurrency: "unbounded" }
    )
    const fiber = yield* Effect.fork(all)
    return Effect.zipRight(Fiber.join(fiber), Ref.get(times))
  })

const failureOf = <A>(effect: Effect.Effect<A, RateLimited | SharedStoreUnavailable>) =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result) && result.left instanceof RateLimited
      ? Effect.succeed(result.left)
      : Effect.dieMessage("expected RateLimited")
  )

describe("RateLimiter", () => {
  it.effect("admits the burst at once, then one per 1/rate", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("b", { requestsPerSecond: 2, burst: 2 })
      const times = yield* startTimes(bucket, 6)
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* times, [0, 0, 500, 1000, 1500, 2000])
    })
  )

  it.effect("the default burst is ceil(requestsPerSecond)", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("b", { requestsPerSecond: 2.5 })
      const times = yield* startTimes(bucket, 4)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* times, [0, 0, 0, 400])
    })
  )

  it.effect("refills up to the burst only, however long it idles", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("b", { requestsPerSecond: 2, burst: 2 })
      yield* Effect.all([bucket.take, bucket.take])
      assert.strictEqual((yield* bucket.snapshot).requests, 0)
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* bucket.snapshot, { requests: 2, tokens: undefined, waiting: 0 })
      const times = yield* startTimes(bucket, 3)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* times, [10_000, 10_000, 10_500])
    })
  )

  it.effect("fails at once with RateLimited when the wait would exceed maxWait", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("http://a:11434", { requestsPerSecond: 1, maxWait: "1 second" })
      yield* bucket.take
      const second = yield* Effect.fork(bucket.take)
      yield* TestClock.adjust(0)
      const error = yield* failureOf(bucket.take)
      assert.instanceOf(error, RateLimited)
      assert.deepStrictEqual(error, new RateLimited({ scope: "http://a:11434", limit: "requests", retryAfterMs: 2000 }))
      assert.strictEqual((yield* bucket.snapshot).waiting, 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(second)
      assert.strictEqual(yield* Clock.currentTimeMillis, 1000)
    })
  )

  it.effect("maxWait 0 fails at once when the bucket is empty", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("b", { requestsPerSecond: 4, burst: 1, maxWait: 0 })
      yield* bucket.take
      const error = yield* failureOf(bucket.take)
      assert.strictEqual(error.limit, "requests")
      assert.strictEqual(error.retryAfterMs, 250)
      yield* TestClock.adjust("250 millis")
      yield* bucket.take
    })
  )

  it.effect("a charge that drives the token bucket negative makes the next caller wait for the refill", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("b", { requestsPerSecond: 100, tokensPerMinute: 600 })
      yield* bucket.take
      yield* bucket.charge(700)
      assert.deepStrictEqual(yield* bucket.snapshot, { requests: 99, tokens: -100, waiting: 0 })
      const next = yield* startTimes(bucket, 2)
      yield* TestClock.adjust("9999 millis")
      assert.strictEqual((yield* bucket.snapshot).waiting, 2)
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* next, [10_000, 10_000])
    })
  )

  it.effect("fails with limit tokens when the model-token refill is beyond maxWait", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("key:alice", {
        requestsPerSecond: 100,
        tokensPerMinute: 600,
        maxWait: "5 seconds"
      })
      yield* bucket.take
      yield* bucket.charge(700)
      const error = yield* failureOf(bucket.take)
      assert.deepStrictEqual(error, new RateLimited({ scope: "key:alice", limit: "tokens", retryAfterMs: 10_000 }))
      yield* TestClock.adjust("6 seconds")
      const waiter = yield* Effect.fork(bucket.take)
      yield* TestClock.adjust("4 seconds")
      yield* Fiber.join(waiter)
      assert.strictEqual(yield* Clock.currentTimeMillis, 10_000)
    })
  )

  it.effect("an interrupted waiter gives its reservation back: the next waiter is admitted earlier", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("b", { requestsPerSecond: 1, burst: 1 })
      yield* bucket.take
      const second = yield* Effect.fork(bucket.take)
      yield* TestClock.adjust(0)
      const third = yield* Effect.fork(Effect.zipRight(bucket.take, Clock.currentTimeMillis))
      yield* TestClock.adjust("100 millis")
      assert.strictEqual((yield* bucket.snapshot).waiting, 2)
      yield* Fiber.interrupt(second)
      assert.strictEqual((yield* bucket.snapshot).waiting, 1)
      yield* TestClock.adjust("900 millis")
      assert.strictEqual(yield* Fiber.join(third), 1000)
    })
  )

  it.effect("waiters are admitted in arrival order", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("b", { requestsPerSecond: 10, burst: 1 })
      const order = yield* Ref.make<ReadonlyArray<number>>([])
      yield* bucket.take
      const fibers = yield* Effect.forEach([1, 2, 3, 4], (n) =>
        Effect.fork(bucket.limit(Ref.update(order, (xs) => [...xs, n]))).pipe(Effect.zipLeft(TestClock.adjust(0)))
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(yield* Ref.get(order), [1, 2, 3, 4])
    })
  )

  it.effect("no limits: everything passes at once", () =>
    Effect.gen(function* () {
      const bucket = yield* makeBucket("b", { requestsPerSecond: Infinity })
      yield* Effect.all(Array.from({ length: 100 }, () => bucket.take))
      assert.strictEqual(yield* Clock.currentTimeMillis, 0)
    })
  )

  it.effect("keys are independent and each bucket is created once", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter
      const limits = { requestsPerSecond: 1, maxWait: 0 }
      const a = yield* limiter.bucket("a", limits)
      yield* a.take
      yield* (yield* limiter.bucket("b", limits)).take
      const again = yield* limiter.bucket("a", { requestsPerSecond: 1000 })
      assert.strictEqual(again, a)
      assert.strictEqual((yield* failureOf(again.take)).scope, "a")
      assert.strictEqual((yield* limiter.stats).buckets, 2)
    }).pipe(Effect.provide(RateLimiter.Default))
  )

  it.effect("the service alone through its Layer counts waits and rejections by limit", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter
      const requests = yield* limiter.bucket("r", { requestsPerSecond: 1, maxWait: "1 second" })
      const tokens = yield* limiter.bucket("t", { requestsPerSecond: 10, tokensPerMinute: 60, maxWait: "1 second" })
      yield* requests.take
      const waiter = yield* Effect.fork(requests.take)
      yield* TestClock.adjust(0)
      yield* Effect.either(requests.take)
      yield* tokens.take
      yield* tokens.charge(120)
      yield* Effect.either(tokens.take)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiter)
      const stats = yield* limiter.stats
      assert.deepStrictEqual(stats, {
        buckets: 2,
        waits: 1,
        rejections: 2,
        rejectionsByLimit: { requests: 1, tokens: 1 }
      })
    }).pipe(Effect.provide(RateLimiter.Default))
  )
})
