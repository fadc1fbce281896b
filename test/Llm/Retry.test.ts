/** The retry policy under the TestClock, with seeded jitter: backoff, caps, deadline, Retry-After, streams. */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Clock, Duration, Effect, Fiber, Random, Ref, Schedule, Stream, TestClock } from "effect"
import type { LlmError } from "../../src/Domain/LlmError.js"
import {
  BudgetExceeded,
  CircuitOpen,
  InvalidRequest,
  ModelNotFound,
  ServerBusy,
  TransportError
} from "../../src/Domain/LlmError.js"
import * as Retry from "../../src/Llm/Retry.js"

const backend = "http://a:11434"
const transport = new TransportError({ backend, method: "chat", reason: "connection reset" })
/** An error with a Retry-After that the policy retries: one backend's open breaker. */
const busy = (retryAfterMs: number) => new CircuitOpen({ backend, retryAfterMs })

/** Runs `effect` with `retry(options)` on a fork, always failing with `error`; returns the attempt times (ms). */
const attemptsOf = (error: LlmError, options: Retry.Options, advance: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function* () {
    const times = yield* Ref.make<Array<number>>([])
    const start = yield* Clock.currentTimeMillis
    const call = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.zipRight(
        Ref.update(times, (xs) => [...xs, now - start]),
        Effect.fail(error)
      )
    )
    const fiber = yield* Effect.fork(call.pipe(Retry.retry(options)))
    yield* TestClock.adjust(advance)
    const final = yield* Effect.flip(Fiber.join(fiber))
    return { final, times: yield* Ref.get(times) }
  })

describe("Retry.policy", () => {
  it.effect("grows exponentially within the jitter bounds, capped at maxDelay, deterministic per seed", () =>
    Effect.gen(function* () {
      const options: Retry.Options = {
        base: "100 millis",
        factor: 2,
        maxDelay: "5 seconds",
        maxRetries: 10,
        deadline: "1 hour"
      }
      const run = (seed: string) =>
        Schedule.run(
          Retry.policy(options),
          0,
          Array.from({ length: 12 }, () => transport)
        ).pipe(
          Effect.map((delays) => Chunk.toReadonlyArray(delays).map(Duration.toMillis)),
          Effect.withRandom(Random.make(seed))
        )
      // Schedule.run also returns the output of the final (giving-up) step: 10 retries, 11 outputs
      const delays = (yield* run("seed")).slice(0, 10)
      delays.forEach((delay, n) => {
        const raw = 100 * 2 ** n
        assert.isAtLeast(delay, 0.8 * Math.min(raw, 5000), `retry ${n + 1}`)
        assert.isAtMost(delay, Math.min(1.2 * raw, 5000), `retry ${n + 1}`)
      })
      for (let n = 1; n < 6; n++) assert.isAbove(delays[n]!, delays[n - 1]!)
      assert.isTrue(
        delays.some((delay, n) => delay !== Math.min(100 * 2 ** n, 5000)),
        "jittered"
      )
      assert.deepStrictEqual((yield* run("seed")).slice(0, 10), delays)
      assert.notDeepEqual((yield* run("other")).slice(0, 10), delays)
    })
  )

  it.effect("without jitter: exact exponential delays", () =>
    Effect.gen(function* () {
      const { times } = yield* attemptsOf(transport, { jitter: false, maxRetries: 3 })
      assert.deepStrictEqual(times, [0, 100, 300, 700])
    })
  )

  it.effect("stops after maxRetries and fails with the last error", () =>
    Effect.gen(function* () {
      const { final, times } = yield* attemptsOf(transport, { maxRetries: 2 }).pipe(
        Effect.withRandom(Random.make("seed"))
      )
      assert.strictEqual(times.length, 3)
      assert.strictEqual(final, transport)
    })
  )

  it.effect("stops when the next retry would pass the deadline", () =>
    Effect.gen(function* () {
      const options: Retry.Options = {
        base: "1 second",
        maxDelay: "5 seconds",
        jitter: false,
        maxRetries: 10,
        deadline: "5 seconds"
      }
      const { final, times } = yield* attemptsOf(transport, options)
      assert.deepStrictEqual(times, [0, 1000, 3000])
      assert.strictEqual(final, transport)
    })
  )

  it.effect("makes no retry that would start after the call's own deadline (until)", () =>
    Effect.gen(function* () {
      const options: Retry.Options = { base: "1 second", jitter: false, maxRetries: 10, until: 4_000 }
      const { final, times } = yield* attemptsOf(transport, options)
      assert.deepStrictEqual(times, [0, 1000, 3000], "the next one would start at 7 s")
      assert.strictEqual(final, transport, "the call fails with the last error")
    })
  )

  it.effect("honours Retry-After even when the backoff is shorter", () =>
    Effect.gen(function* () {
      const { times } = yield* attemptsOf(busy(2000), { jitter: false, maxRetries: 2 })
      assert.deepStrictEqual(times, [0, 2000, 4000])
      const jittered = yield* attemptsOf(busy(2000), { maxRetries: 1 }).pipe(Effect.withRandom(Random.make("x")))
      assert.deepStrictEqual(jittered.times, [0, 2000])
    })
  )

  it.effect("503 busy spends no retry: the policy leaves it to requeue, which backs off until its instant", () =>
    Effect.gen(function* () {
      const serverBusy = new ServerBusy({ backend, method: "chat", body: "server busy" })
      const { times } = yield* attemptsOf(serverBusy, { jitter: false })
      assert.deepStrictEqual(times, [0])
      const attempts = yield* Ref.make<Array<number>>([])
      const call = Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.zipRight(
          Ref.update(attempts, (xs) => [...xs, now]),
          Effect.fail<LlmError>(serverBusy)
        )
      )
      const start = yield* Clock.currentTimeMillis
      const fiber = yield* Effect.fork(Effect.retry(call, Retry.requeue(start + 10_000)))
      yield* TestClock.adjust("20 seconds")
      assert.strictEqual((yield* Effect.flip(Fiber.join(fiber)))._tag, "ServerBusy")
      const at = (yield* Ref.get(attempts)).map((t) => t - start)
      // 25 ms doubling to 1 s (x [0.8, 1.2]), until 10 s: far more than maxRetries, none after the instant
      assert.isAbove(at.length, 10)
      assert.isAtMost(at[at.length - 1]!, 10_000)
      const gaps = at.slice(1).map((t, i) => t - at[i]!)
      assert.isTrue(gaps.every((gap) => gap >= 20 && gap <= 1000))
      assert.isAtLeast(gaps[gaps.length - 1]!, 800)
    })
  )

  it.effect("gives up when Retry-After exceeds the remaining deadline", () =>
    Effect.gen(function* () {
      const { final, times } = yield* attemptsOf(busy(2000), { deadline: "1 second" })
      assert.deepStrictEqual(times, [0])
      assert.strictEqual(final._tag, "CircuitOpen")
    })
  )

  it.effect("does not retry non-retryable errors", () =>
    Effect.gen(function* () {
      const errors: ReadonlyArray<LlmError> = [
        new InvalidRequest({ backend, method: "chat", status: 400, body: "bad" }),
        new ModelNotFound({ backend, method: "chat", model: "nope", body: "model 'nope' not found" }),
        new BudgetExceeded({ budget: "tick", limit: "calls", used: 3, max: 3 })
      ]
      for (const error of errors) {
        const { final, times } = yield* attemptsOf(error, {})
        assert.deepStrictEqual(times, [0], error._tag)
        assert.strictEqual(final, error)
      }
    })
  )

  it.effect("retries CircuitOpen (the engine routes it elsewhere) after its retryAfterMs", () =>
    Effect.gen(function* () {
      const open = new CircuitOpen({ backend, retryAfterMs: 700 })
      const { times } = yield* attemptsOf(open, { jitter: false, maxRetries: 1 })
      assert.deepStrictEqual(times, [0, 700])
    })
  )

  it.effect("onRetry sees each retry with its number and delay, not the final failure", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<Array<readonly [string, number, number]>>([])
      const onRetry = (error: LlmError, attempt: number, delay: Duration.Duration) =>
        Ref.update(seen, (xs) => [...xs, [error._tag, attempt, Duration.toMillis(delay)] as const])
      yield* attemptsOf(transport, { jitter: false, maxRetries: 3, onRetry })
      assert.deepStrictEqual(yield* Ref.get(seen), [
        ["TransportError", 1, 100],
        ["TransportError", 2, 200],
        ["TransportError", 3, 400]
      ])
    })
  )

  it.effect("a call that recovers returns its value", () =>
    Effect.gen(function* () {
      const attempts = yield* Ref.make(0)
      const call = Effect.flatMap(
        Ref.updateAndGet(attempts, (n) => n + 1),
        (n) => (n < 3 ? Effect.fail(transport) : Effect.succeed(`ok after ${n}`))
      )
      const fiber = yield* Effect.fork(call.pipe(Retry.retry({ jitter: false })))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), "ok after 3")
    })
  )
})

describe("Retry.retryStream", () => {
  it.effect("retries a stream that fails before its first chunk", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      const stream = Stream.unwrap(
        Effect.map(
          Ref.updateAndGet(runs, (n) => n + 1),
          (n) => (n < 3 ? Stream.fail(transport) : Stream.make(1, 2, 3))
        )
      )
      const fiber = yield* Effect.fork(Stream.runCollect(stream.pipe(Retry.retryStream({ jitter: false }))))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(fiber)), [1, 2, 3])
      assert.strictEqual(yield* Ref.get(runs), 3)
    })
  )

  it.effect("does not retry a stream that failed after emitting a chunk", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      const seen = yield* Ref.make<Array<number>>([])
      const stream = Stream.unwrap(
        Effect.as(
          Ref.update(runs, (n) => n + 1),
          Stream.concat(Stream.make(1), Stream.fail(transport))
        )
      )
      const fiber = yield* Effect.fork(
        stream.pipe(
          Retry.retryStream({ jitter: false }),
          Stream.tap((n) => Ref.update(seen, (xs) => [...xs, n])),
          Stream.runDrain
        )
      )
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Effect.flip(Fiber.join(fiber)), transport)
      assert.deepStrictEqual(yield* Ref.get(seen), [1])
      assert.strictEqual(yield* Ref.get(runs), 1)
    })
  )

  it.effect("gives up on a stream after maxRetries, with onRetry counting", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      const retries = yield* Ref.make(0)
      const stream = Stream.unwrap(
        Effect.as(
          Ref.update(runs, (n) => n + 1),
          Stream.fail(transport)
        )
      )
      const fiber = yield* Effect.fork(
        Stream.runDrain(
          stream.pipe(Retry.retryStream({ maxRetries: 2, onRetry: () => Ref.update(retries, (n) => n + 1) }))
        )
      )
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Effect.flip(Fiber.join(fiber)), transport)
      assert.strictEqual(yield* Ref.get(runs), 3)
      assert.strictEqual(yield* Ref.get(retries), 2)
    })
  )
})
