/**
 * The combinators that time engine calls, on the TestClock; and a compile-time check that the engine's own
 * values fit the sampler's and the recorders' shapes, so wiring them needs no adapters.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Metric, Stream, TestClock } from "effect"
import type { Backend } from "../../src/Llm/Backends.js"
import type { Stats as BreakerStats } from "../../src/Llm/CircuitBreaker.js"
import type * as RateLimiter from "../../src/Llm/RateLimiter.js"
import type { CacheStats } from "../../src/Llm/ResponseCache.js"
import * as Labels from "../../src/Observability/Labels.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import * as Recorders from "../../src/Observability/Recorders.js"
import type * as Sampler from "../../src/Observability/Sampler.js"
import * as Track from "../../src/Observability/Track.js"

// The engine's values are accepted as they are.
export const fits = {
  backend: (b: Backend): Sampler.BackendSource => b,
  cache: (c: CacheStats): Sampler.CacheCounts => c,
  breaker: (s: BreakerStats): Sampler.BreakerStats => s,
  events: (url: string): RateLimiter.Events => Recorders.rateLimitEvents(url)
}

const histogram = (metric: Metric.Metric.Histogram<any>, labels: Record<string, string>) =>
  Metric.value(Labels.tag(metric, labels))
const count = (metric: Metric.Metric.Counter<number>, labels: Record<string, string>) =>
  Effect.map(Metric.value(Labels.tag(metric, labels)), (s) => s.count)

describe("Track", () => {
  it.effect("request: times the call on the Clock and records ok, fallback and error with the error kind", () =>
    Effect.gen(function* () {
      const labels = { model: "track-a", endpoint: "chat" }
      const slow = Effect.sleep("250 millis").pipe(Effect.as({ served: "primary" }))
      const fiber = yield* Effect.fork(Track.request(labels, (a: { served: string }) => a.served)(slow))
      yield* TestClock.adjust("250 millis")
      yield* Fiber.join(fiber)
      yield* Track.request(labels, (a: { served: string }) => a.served)(Effect.succeed({ served: "stale" }))
      yield* Effect.flip(Track.request(labels)(Effect.fail({ _tag: "ServerBusy" })))

      const model = "track-a:latest"
      const ok = yield* histogram(Metrics.requestDuration, { model, endpoint: "chat", outcome: "ok" })
      assert.strictEqual(ok.count, 1)
      assert.strictEqual(ok.sum, 0.25)
      const byOutcome = (outcome: string) =>
        count(Metrics.requests, { model, endpoint: "chat", priority: "normal", outcome })
      assert.strictEqual(yield* byOutcome("fallback"), 1)
      assert.strictEqual(yield* byOutcome("error"), 1)
      assert.strictEqual(yield* count(Metrics.fallbacks, { endpoint: "chat", strategy: "stale" }), 1)
      assert.strictEqual(yield* count(Metrics.errors, { endpoint: "chat", kind: "ServerBusy" }), 1)
    })
  )

  it.effect("upstream: records the attempt's outcome and the tokens its answer reports", () =>
    Effect.gen(function* () {
      const labels = { backend: "http://track-b", model: "track-b", endpoint: "chat" }
      const answer = { prompt_eval_count: 12, eval_count: 30, eval_duration: 5e8 }
      yield* Track.upstream(labels)(Effect.succeed(answer))
      yield* Effect.flip(Track.upstream(labels)(Effect.fail({ _tag: "TimeoutError" })))
      const where = { backend: "http://track-b", model: "track-b:latest" }
      assert.strictEqual(yield* count(Metrics.tokensIn, where), 12)
      assert.strictEqual(yield* count(Metrics.tokensOut, where), 30)
      assert.strictEqual((yield* histogram(Metrics.tokensPerSecond, where)).sum, 60)
      const outcome = (o: string) => count(Metrics.upstreamRequests, { ...where, endpoint: "chat", outcome: o })
      assert.strictEqual(yield* outcome("ok"), 1)
      assert.strictEqual(yield* outcome("TimeoutError"), 1)
    })
  )

  it.effect("upstreamStream: time to first token, mean inter-token gap and the last chunk's usage", () =>
    Effect.gen(function* () {
      const labels = { backend: "http://track-c", model: "track-c", endpoint: "chat" }
      const chunks = [{ done: false }, { done: false }, { done: true, prompt_eval_count: 5, eval_count: 3 }]
      const stream = Stream.fromIterable(chunks).pipe(
        Stream.mapEffect((chunk) => Effect.as(Effect.sleep(chunk === chunks[0] ? "100 millis" : "50 millis"), chunk)),
        Track.upstreamStream(labels, (c: { done: boolean }) => c.done)
      )
      const fiber = yield* Effect.fork(Stream.runCollect(stream))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      const where = { backend: "http://track-c", model: "track-c:latest" }
      const ttft = yield* histogram(Metrics.timeToFirstToken, where)
      assert.strictEqual(ttft.sum, 0.1)
      assert.strictEqual((yield* histogram(Metrics.interTokenLatency, where)).sum, 0.05)
      assert.strictEqual(yield* count(Metrics.tokensOut, where), 3)
      // no eval_duration: decode speed from the stream's timing, 3 tokens in the 100 ms after the first chunk
      assert.strictEqual((yield* histogram(Metrics.tokensPerSecond, where)).sum, 30)
    })
  )

  it.effect("requestStream: an interrupted stream counts as interrupted, not as an error", () =>
    Effect.gen(function* () {
      const labels = { model: "track-d", endpoint: "generate", priority: "interactive" }
      const never = Stream.never.pipe(Track.requestStream(labels))
      const fiber = yield* Effect.fork(Stream.runDrain(never))
      yield* TestClock.adjust(0)
      yield* Fiber.interrupt(fiber)
      const outcome = (o: string) =>
        count(Metrics.requests, { model: "track-d:latest", endpoint: "generate", priority: "interactive", outcome: o })
      assert.strictEqual(yield* outcome("interrupted"), 1)
      assert.strictEqual(yield* outcome("error"), 0)
    })
  )

  it.effect("requestScoped: the scope of a Stream.unwrapScoped records the stream's end: ok, error, interrupted", () =>
    Effect.gen(function* () {
      const labels = { model: "track-e", endpoint: "chat", priority: "normal" }
      const tracked = <A, E>(stream: Stream.Stream<A, E>) =>
        Stream.unwrapScoped(Effect.as(Track.requestScoped(labels), stream))
      yield* Stream.runDrain(tracked(Stream.make(1, 2, 3)))
      yield* Effect.either(Stream.runDrain(tracked(Stream.concat(Stream.make(1), Stream.fail("boom")))))
      const fiber = yield* Effect.fork(Stream.runDrain(tracked(Stream.never)))
      yield* TestClock.adjust(0)
      yield* Fiber.interrupt(fiber)
      const outcome = (o: string) =>
        count(Metrics.requests, { model: "track-e:latest", endpoint: "chat", priority: "normal", outcome: o })
      assert.deepStrictEqual([yield* outcome("ok"), yield* outcome("error"), yield* outcome("interrupted")], [1, 1, 1])
    })
  )

  it("labels: models beyond the cap become 'other'; routes outside the list become 'other'", () => {
    const label = Labels.bounded(2)
    assert.deepStrictEqual(["a", "b", "c", "a"].map(label), ["a", "b", "other", "a"])
    assert.strictEqual(Labels.strategy("alternate:qwen2.5"), "alternate")
    const route = Track.routeOf()
    assert.strictEqual(route("/api/chat?x=1"), "/api/chat")
    assert.strictEqual(route("/wp-admin/login.php"), "other")
  })
})
