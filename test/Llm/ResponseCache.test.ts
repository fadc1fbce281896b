import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option, TestClock } from "effect"
import { type Options, ResponseCache } from "../../src/Llm/ResponseCache.js"

/** An effect that counts its runs and returns the given value (or what `next` says for that run). */
const counting = <A>(next: (run: number) => Effect.Effect<A, string>) => {
  let runs = 0
  return {
    runs: () => runs,
    effect: Effect.suspend(() => next(++runs))
  }
}
const constant = <A>(value: A) => counting(() => Effect.succeed(value))

const withCache = (options: Partial<Options>) => Effect.provide(ResponseCache.layer(options))

describe("ResponseCache (unary)", () => {
  it.effect("computes on a miss, then serves the hit", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const compute = constant("answer")
      const first = yield* cache.get("k", "use", compute.effect)
      const second = yield* cache.get("k", "use", compute.effect)
      assert.deepStrictEqual(
        [first, second],
        [
          { value: "answer", lookup: "miss" },
          { value: "answer", lookup: "hit" }
        ]
      )
      assert.strictEqual(compute.runs(), 1)
    }).pipe(Effect.provide(ResponseCache.Default))
  )

  it.effect("expires after the TTL, but the stale entry is still there", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const compute = counting((run) => Effect.succeed(`v${run}`))
      yield* cache.get("k", "use", compute.effect)
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual((yield* cache.get("k", "use", compute.effect)).lookup, "hit")
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* cache.stale<string>("k"), Option.some("v1"))
      assert.deepStrictEqual(yield* cache.get("k", "use", compute.effect), { value: "v2", lookup: "miss" })
      assert.strictEqual((yield* cache.stats).staleServed, 1)
    }).pipe(withCache({ ttl: "1 minute" }))
  )

  it.effect("evicts the least recently used entry, not the first inserted", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const compute = constant("v")
      yield* cache.get("a", "use", compute.effect)
      yield* cache.get("b", "use", compute.effect)
      assert.strictEqual((yield* cache.get("a", "use", compute.effect)).lookup, "hit")
      yield* cache.get("c", "use", compute.effect)
      assert.isTrue(Option.isNone(yield* cache.stale("b")))
      assert.strictEqual((yield* cache.get("a", "use", compute.effect)).lookup, "hit")
      assert.strictEqual((yield* cache.get("c", "use", compute.effect)).lookup, "hit")
      const stats = yield* cache.stats
      assert.strictEqual(stats.evictions, 1)
      assert.strictEqual(stats.entries, 2)
    }).pipe(withCache({ maxEntries: 2 }))
  )

  it.effect("keeps total bytes under the bound, evicting least recently used first", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const value = "x".repeat(10) // 12 bytes of JSON
      yield* cache.get("a", "use", Effect.succeed(value))
      yield* cache.get("b", "use", Effect.succeed(value))
      yield* cache.get("a", "use", Effect.succeed(value))
      yield* cache.get("c", "use", Effect.succeed(value))
      assert.deepStrictEqual(
        [yield* cache.stale("a"), yield* cache.stale("b"), yield* cache.stale("c")].map(Option.isSome),
        [true, false, true]
      )
      yield* cache.get("huge", "use", Effect.succeed("y".repeat(100)))
      const stats = yield* cache.stats
      assert.deepStrictEqual([stats.entries, stats.bytes, stats.evictions], [2, 24, 1])
    }).pipe(withCache({ maxBytes: 30 }))
  )

  it.effect("refresh recomputes and stores; bypass neither reads nor writes", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const compute = counting((run) => Effect.succeed(`v${run}`))
      yield* cache.get("k", "use", compute.effect)
      assert.deepStrictEqual(yield* cache.get("k", "refresh", compute.effect), { value: "v2", lookup: "refresh" })
      assert.deepStrictEqual(yield* cache.get("k", "use", compute.effect), { value: "v2", lookup: "hit" })
      assert.deepStrictEqual(yield* cache.get("k", "bypass", compute.effect), { value: "v3", lookup: "bypass" })
      assert.deepStrictEqual(yield* cache.get("k", "use", compute.effect), { value: "v2", lookup: "hit" })
      yield* cache.get("other", "bypass", compute.effect)
      assert.strictEqual((yield* cache.get("other", "use", compute.effect)).lookup, "miss")
      const stats = yield* cache.stats
      assert.deepStrictEqual([stats.refreshes, stats.bypasses, stats.hits, stats.misses], [1, 2, 2, 2])
    }).pipe(withCache({}))
  )

  it.effect("never stores a failure", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const compute = counting((run) => (run === 1 ? Effect.fail("boom") : Effect.succeed("ok")))
      assert.strictEqual(yield* Effect.flip(cache.get("k", "use", compute.effect)), "boom")
      assert.isTrue(Option.isNone(yield* cache.stale("k")))
      assert.deepStrictEqual(yield* cache.get("k", "use", compute.effect), { value: "ok", lookup: "miss" })
      assert.strictEqual(compute.runs(), 2)
    }).pipe(withCache({}))
  )

  it.effect("a failed recompute after expiry leaves the stale entry for the fallback", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const compute = counting((run) => (run === 1 ? Effect.succeed("old") : Effect.fail("down")))
      yield* cache.get("k", "use", compute.effect)
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(yield* Effect.flip(cache.get("k", "use", compute.effect)), "down")
      assert.deepStrictEqual(yield* cache.stale<string>("k"), Option.some("old"))
    }).pipe(withCache({ ttl: "1 minute" }))
  )

  it.effect("invalidate and clear drop entries", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      yield* cache.get("a", "use", Effect.succeed(1))
      yield* cache.get("b", "use", Effect.succeed(2))
      yield* cache.invalidate("a")
      assert.isTrue(Option.isNone(yield* cache.stale("a")))
      assert.strictEqual((yield* cache.stats).entries, 1)
      yield* cache.clear
      assert.deepStrictEqual([(yield* cache.stats).entries, (yield* cache.stats).bytes], [0, 0])
    }).pipe(withCache({}))
  )
})

describe("ResponseCache (coalescing)", () => {
  it.effect("100 concurrent identical misses make one upstream call", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const gate = yield* Deferred.make<void>()
      const compute = counting(() => Effect.as(Deferred.await(gate), "shared"))
      const calls = Effect.all(
        Array.from({ length: 100 }, () => cache.get("k", "use", compute.effect)),
        { concurrency: "unbounded" }
      )
      const fiber = yield* Effect.fork(calls)
      yield* TestClock.adjust(0)
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.join(fiber)
      assert.strictEqual(compute.runs(), 1)
      assert.isTrue(results.every((r) => r.value === "shared"))
      assert.strictEqual(results.filter((r) => r.lookup === "miss").length, 1)
      assert.strictEqual(results.filter((r) => r.lookup === "coalesced").length, 99)
      const stats = yield* cache.stats
      assert.deepStrictEqual([stats.misses, stats.coalesced], [1, 99])
    }).pipe(withCache({}))
  )

  it.effect("followers share the leader's failure, which is not stored", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const gate = yield* Deferred.make<void>()
      const compute = counting((run) => Effect.zipRight(Deferred.await(gate), Effect.fail(`boom${run}`)))
      const fiber = yield* Effect.fork(
        Effect.all(
          Array.from({ length: 5 }, () => Effect.flip(cache.get("k", "use", compute.effect))),
          {
            concurrency: "unbounded"
          }
        )
      )
      yield* TestClock.adjust(0)
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Fiber.join(fiber), ["boom1", "boom1", "boom1", "boom1", "boom1"])
      assert.strictEqual(compute.runs(), 1)
      assert.strictEqual((yield* cache.stats).entries, 0)
    }).pipe(withCache({}))
  )

  it.effect("an interrupted leader hands over: its followers still complete", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const gate = yield* Deferred.make<void>()
      const compute = counting((run) => (run === 1 ? Effect.never : Effect.as(Deferred.await(gate), "second")))
      const leader = yield* Effect.fork(cache.get("k", "use", compute.effect))
      yield* TestClock.adjust(0)
      const followers = yield* Effect.fork(
        Effect.all(
          Array.from({ length: 3 }, () => cache.get("k", "use", compute.effect)),
          { concurrency: "unbounded" }
        )
      )
      yield* TestClock.adjust(0)
      yield* Fiber.interrupt(leader)
      yield* TestClock.adjust(0)
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.join(followers)
      assert.strictEqual(compute.runs(), 2)
      assert.deepStrictEqual(
        results.map((r) => r.value),
        ["second", "second", "second"]
      )
      assert.deepStrictEqual(results.map((r) => r.lookup).sort(), ["coalesced", "coalesced", "miss"])
      assert.deepStrictEqual(yield* cache.get("k", "use", compute.effect), { value: "second", lookup: "hit" })
      const stats = yield* cache.stats
      assert.deepStrictEqual([stats.misses, stats.coalesced, stats.hits], [2, 2, 1])
    }).pipe(withCache({}))
  )
})

describe("ResponseCache (layer)", () => {
  it.layer(ResponseCache.layer({ maxEntries: 1 }))("used alone through its layer", (it) => {
    it.effect("one entry at most", () =>
      Effect.gen(function* () {
        const cache = yield* ResponseCache
        yield* cache.get("a", "use", Effect.succeed(1))
        yield* cache.get("b", "use", Effect.succeed(2))
        const stats = yield* cache.stats
        assert.deepStrictEqual([stats.entries, stats.evictions], [1, 1])
        assert.isTrue(Exit.isSuccess(yield* Effect.exit(cache.stale("b"))))
      })
    )
  })
})
