/** The RateLimiter service's registry (Llm/Keyed.ts): idle full buckets go, buckets refilling or in debt stay. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { RateLimiter } from "../../src/Llm/RateLimiter.js"

describe("RateLimiter registry", () => {
  it.effect("an idle full bucket is dropped; one in debt for model tokens is kept until it has refilled", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter
      const full = yield* limiter.bucket("full", { requestsPerSecond: 1 })
      const indebted = yield* limiter.bucket("indebted", { tokensPerMinute: 60 })
      yield* indebted.charge(60 * 30)
      yield* TestClock.adjust("20 minutes")
      assert.strictEqual((yield* limiter.stats).buckets, 1)
      assert.strictEqual(yield* limiter.bucket("indebted", { tokensPerMinute: 60 }), indebted)
      assert.isBelow((yield* indebted.snapshot).tokens!, 0)
      const fresh = yield* limiter.bucket("full", { requestsPerSecond: 1 })
      assert.notStrictEqual(fresh, full)
      yield* TestClock.adjust("11 minutes")
      assert.strictEqual((yield* indebted.snapshot).tokens, 60)
      yield* TestClock.adjust("13 minutes")
      assert.strictEqual((yield* limiter.stats).buckets, 0)
      assert.notStrictEqual(yield* limiter.bucket("indebted", { tokensPerMinute: 60 }), indebted)
    }).pipe(Effect.provide(RateLimiter.Default))
  )

  it.effect("a bucket refilling its requests is kept; a new one after it goes starts full", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter
      const limits = { requestsPerSecond: 1 / 1200, maxWait: 0 }
      const slow = yield* limiter.bucket("slow", limits)
      yield* slow.take
      yield* TestClock.adjust("15 minutes")
      assert.strictEqual(yield* limiter.bucket("slow", limits), slow)
      assert.strictEqual((yield* Effect.flip(slow.take))._tag, "RateLimited")
      yield* TestClock.adjust("5 minutes")
      yield* TestClock.adjust("13 minutes")
      const fresh = yield* limiter.bucket("slow", limits)
      assert.notStrictEqual(fresh, slow)
      yield* fresh.take
    }).pipe(Effect.provide(RateLimiter.Default))
  )
})
