/** The circuit breaker under the TestClock: both opening rules, half-open probes, growing open periods, streams. */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Logger, Option, Ref, Stream, TestClock } from "effect"
import type { LlmError } from "../../src/Domain/LlmError.js"
import {
  CircuitOpen,
  InvalidRequest,
  ModelNotFound,
  RateLimited,
  ServerBusy,
  StreamIncomplete,
  TransportError
} from "../../src/Domain/LlmError.js"
import * as CircuitBreaker from "../../src/Llm/CircuitBreaker.js"

const backend = "http://a:11434"
const transport = new TransportError({ backend, method: "chat", reason: "connection refused" })
const invalid = new InvalidRequest({ backend, method: "chat", status: 400, body: "bad request" })
const notFound = new ModelNotFound({ backend, method: "chat", model: "nope", body: "model 'nope' not found" })

/** A breaker and a counted call through it. */
const setup = (options?: CircuitBreaker.Options) =>
  Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make(backend, options)
    const invocations = yield* Ref.make(0)
    const call = <A>(result: Effect.Effect<A, LlmError>) =>
      Effect.exit(
        breaker.protect(
          Effect.zipRight(
            Ref.update(invocations, (n) => n + 1),
            result
          )
        )
      )
    const fail = (error: LlmError = transport) => call(Effect.fail(error))
    const succeed = call(Effect.succeed("ok"))
    return { breaker, invocations, call, fail, succeed } as const
  })

const repeat = <A, E>(n: number, effect: Effect.Effect<A, E>) => Effect.replicateEffect(effect, n, { discard: true })

const rejection = <A>(exit: Exit.Exit<A, LlmError>): CircuitOpen => {
  const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
  assert.instanceOf(error, CircuitOpen)
  return error as CircuitOpen
}

const openForMs = (breaker: CircuitBreaker.Breaker) =>
  Effect.gen(function* () {
    const { openUntilMs } = yield* breaker.stats
    const now = yield* Clock.currentTimeMillis
    assert.isDefined(openUntilMs)
    return openUntilMs! - now
  })

describe("CircuitBreaker", () => {
  it.effect("opens after N consecutive backend failures, then fails fast without running the call", () =>
    Effect.gen(function* () {
      const { breaker, invocations, fail, succeed } = yield* setup({ consecutiveFailures: 3 })
      yield* repeat(2, fail())
      assert.strictEqual(yield* breaker.state, "closed")
      yield* fail()
      assert.strictEqual(yield* breaker.state, "open")
      assert.isFalse(yield* breaker.isCallPermitted)
      yield* TestClock.adjust("2 seconds")
      const error = rejection(yield* succeed)
      assert.strictEqual(error.backend, backend)
      assert.strictEqual(error.retryAfterMs, 3000)
      assert.isTrue(error.retryable)
      assert.strictEqual(yield* Ref.get(invocations), 3)
      const stats = yield* breaker.stats
      assert.deepStrictEqual(stats, {
        state: "open",
        trips: 1,
        rejections: 1,
        transitions: 1,
        consecutiveFailures: 3,
        dead: true,
        openUntilMs: 5000
      })
    })
  )

  it.effect("half-open after openFor admits exactly halfOpenProbes probes; a probe success closes", () =>
    Effect.gen(function* () {
      const { breaker, invocations, call, fail } = yield* setup({ consecutiveFailures: 1, halfOpenProbes: 2 })
      yield* fail()
      yield* TestClock.adjust("4999 millis")
      assert.strictEqual(yield* breaker.state, "open")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* breaker.state, "half-open")
      const gate = yield* Deferred.make<void>()
      const probes = yield* Effect.fork(
        Effect.all([call(Deferred.await(gate)), call(Deferred.await(gate))], { concurrency: "unbounded" })
      )
      yield* TestClock.adjust(0)
      assert.isFalse(yield* breaker.isCallPermitted)
      const third = rejection(yield* call(Effect.void))
      assert.strictEqual(third.retryAfterMs, 5000)
      assert.strictEqual(yield* Ref.get(invocations), 3)
      yield* Deferred.succeed(gate, void 0)
      const exits = yield* Fiber.join(probes)
      assert.isTrue(exits.every(Exit.isSuccess))
      assert.strictEqual(yield* breaker.state, "closed")
      assert.isTrue(yield* breaker.isCallPermitted)
    })
  )

  it.effect("a probe failure opens it again for longer, capped; a close resets the period", () =>
    Effect.gen(function* () {
      const options: CircuitBreaker.Options = {
        consecutiveFailures: 1,
        openFor: "5 seconds",
        backoffFactor: 2,
        maxOpenFor: "15 seconds"
      }
      const { breaker, fail, succeed } = yield* setup(options)
      yield* fail()
      const periods: Array<number> = []
      for (let i = 0; i < 4; i++) {
        const period = yield* openForMs(breaker)
        periods.push(period)
        yield* TestClock.adjust(period)
        assert.strictEqual(yield* breaker.state, "half-open")
        yield* fail()
      }
      assert.deepStrictEqual(periods, [5000, 10000, 15000, 15000])
      yield* TestClock.adjust(yield* openForMs(breaker))
      yield* succeed
      assert.strictEqual(yield* breaker.state, "closed")
      yield* fail()
      assert.strictEqual(yield* openForMs(breaker), 5000)
      assert.strictEqual((yield* breaker.stats).trips, 6)
    })
  )

  it.effect("a client's 4xx never trips it, and breaks a run of failures", () =>
    Effect.gen(function* () {
      const { breaker, fail } = yield* setup({ consecutiveFailures: 3, minimumVolume: 4 })
      yield* repeat(10, fail(invalid))
      yield* repeat(10, fail(notFound))
      assert.strictEqual(yield* breaker.state, "closed")
      yield* repeat(2, fail())
      yield* fail(invalid)
      yield* repeat(2, fail())
      assert.strictEqual(yield* breaker.state, "closed")
      assert.strictEqual((yield* breaker.stats).consecutiveFailures, 2)
    })
  )

  it.effect("the ratio rule opens it, degraded not dead, at the failure ratio over the default 100 calls", () =>
    Effect.gen(function* () {
      const { breaker, fail, succeed } = yield* setup()
      yield* repeat(49, Effect.zipRight(succeed, fail()))
      assert.strictEqual(yield* breaker.state, "closed")
      yield* succeed
      yield* fail()
      assert.strictEqual(yield* breaker.state, "open")
      assert.isFalse((yield* breaker.stats).dead)
    })
  )

  it.effect("with the defaults, 19 failures in a row never open it; the 20th opens it, dead", () =>
    Effect.gen(function* () {
      const { breaker, fail, succeed } = yield* setup()
      for (let run = 0; run < 10; run++) {
        yield* repeat(19, fail())
        yield* repeat(60, succeed)
      }
      assert.strictEqual(yield* breaker.state, "closed")
      yield* repeat(20, fail())
      assert.strictEqual(yield* breaker.state, "open")
      assert.isTrue((yield* breaker.stats).dead)
    })
  )

  it.effect("503 busy is backpressure: any number of them never opens it", () =>
    Effect.gen(function* () {
      const { breaker, fail } = yield* setup()
      yield* repeat(500, fail(new ServerBusy({ backend, method: "chat", body: "server busy" })))
      const stats = yield* breaker.stats
      assert.strictEqual(stats.state, "closed")
      assert.strictEqual(stats.consecutiveFailures, 0)
    })
  )

  it.effect("awaitTurn: a dead open breaker answers at once; a degraded one waits for its open period", () =>
    Effect.gen(function* () {
      const dead = yield* setup({ consecutiveFailures: 2 })
      yield* repeat(2, dead.fail())
      assert.strictEqual(yield* dead.breaker.awaitTurn(60_000), "dead")

      const degraded = yield* setup({ minimumVolume: 4 })
      yield* repeat(2, Effect.zipRight(degraded.succeed, degraded.fail()))
      assert.strictEqual(yield* degraded.breaker.state, "open")
      const turn = yield* Effect.fork(degraded.breaker.awaitTurn(60_000))
      yield* TestClock.adjust("4999 millis")
      assert.isNull(turn.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(turn), "changed")
      assert.isTrue(yield* degraded.breaker.isCallPermitted)
    })
  )

  it.effect(
    "awaitTurn: while the probe runs, waiters wait for its outcome; a failed probe makes a dead one fail fast",
    () =>
      Effect.gen(function* () {
        const { breaker, call } = yield* setup({ consecutiveFailures: 1 })
        yield* call(Effect.fail(transport))
        yield* TestClock.adjust("5 seconds")
        const gate = yield* Deferred.make<void>()
        const probe = yield* Effect.fork(call(Effect.zipRight(Deferred.await(gate), Effect.fail(transport))))
        yield* TestClock.adjust(0)
        assert.isFalse(yield* breaker.isCallPermitted)
        const waiter = yield* Effect.fork(breaker.awaitTurn(60_000))
        yield* TestClock.adjust(0)
        assert.isNull(waiter.unsafePoll())
        yield* Deferred.succeed(gate, void 0)
        yield* Fiber.join(probe)
        assert.strictEqual(yield* Fiber.join(waiter), "changed")
        assert.strictEqual(yield* breaker.awaitTurn(60_000), "dead")
      })
  )

  it.effect("awaitTurn ends with expired at its instant", () =>
    Effect.gen(function* () {
      const { breaker, succeed, fail } = yield* setup({ minimumVolume: 2 })
      yield* Effect.zipRight(succeed, fail())
      const turn = yield* Effect.fork(breaker.awaitTurn(1000))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(turn), "expired")
    })
  )

  it.effect("fewer calls than the minimum volume never open it by ratio", () =>
    Effect.gen(function* () {
      const { breaker, fail, succeed } = yield* setup({ minimumVolume: 20 })
      yield* repeat(4, Effect.zipRight(fail(), succeed))
      yield* repeat(4, fail())
      assert.strictEqual(yield* breaker.state, "closed")
    })
  )

  it.effect("old failures slide out of the window", () =>
    Effect.gen(function* () {
      const { breaker, fail, succeed } = yield* setup({ window: "10 seconds", minimumVolume: 20 })
      yield* repeat(9, Effect.zipRight(succeed, fail()))
      yield* TestClock.adjust("11 seconds")
      yield* repeat(2, Effect.zipRight(succeed, fail()))
      assert.strictEqual(yield* breaker.state, "closed")
      yield* repeat(8, Effect.zipRight(succeed, fail()))
      assert.strictEqual(yield* breaker.state, "open")
    })
  )

  it.effect("interruption counts as nothing and gives a half-open probe slot back", () =>
    Effect.gen(function* () {
      const { breaker, call, fail, succeed } = yield* setup({ consecutiveFailures: 2 })
      yield* fail()
      const hung = yield* Effect.fork(call(Effect.never))
      yield* TestClock.adjust(0)
      yield* Fiber.interrupt(hung)
      assert.strictEqual((yield* breaker.stats).consecutiveFailures, 1)
      yield* fail()
      assert.strictEqual(yield* breaker.state, "open")
      yield* TestClock.adjust("5 seconds")
      const probe = yield* Effect.fork(call(Effect.never))
      yield* TestClock.adjust(0)
      assert.isFalse(yield* breaker.isCallPermitted)
      yield* Fiber.interrupt(probe)
      assert.strictEqual(yield* breaker.state, "half-open")
      assert.isTrue(yield* breaker.isCallPermitted)
      yield* succeed
      assert.strictEqual(yield* breaker.state, "closed")
    })
  )

  it.effect("the engine's own refusals count as nothing", () =>
    Effect.gen(function* () {
      const { breaker, fail } = yield* setup({ consecutiveFailures: 1 })
      yield* TestClock.adjust("1 second")
      yield* fail(new RateLimited({ scope: backend, limit: "requests", retryAfterMs: 100 }))
      assert.strictEqual(yield* breaker.state, "closed")
      yield* fail()
      yield* TestClock.adjust("5 seconds")
      yield* fail(new RateLimited({ scope: backend, limit: "requests", retryAfterMs: 100 }))
      assert.strictEqual(yield* breaker.state, "half-open")
    })
  )

  it.effect("protectStream counts failed streams, a completed stream closes, and an open one does not run", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make(backend, { consecutiveFailures: 2 })
      const runs = yield* Ref.make(0)
      const counted = <A>(stream: Stream.Stream<A, LlmError>) =>
        Stream.unwrap(
          Effect.as(
            Ref.update(runs, (n) => n + 1),
            stream
          )
        )
      const broken = Stream.concat(
        Stream.make(1),
        Stream.fail(new StreamIncomplete({ backend, method: "chat", chunks: 1 }))
      )
      yield* Effect.exit(Stream.runDrain(breaker.protectStream(counted(broken))))
      yield* Effect.exit(Stream.runDrain(breaker.protectStream(counted(broken))))
      assert.strictEqual(yield* breaker.state, "open")
      const exit = yield* Effect.exit(Stream.runCollect(breaker.protectStream(counted(Stream.make(1, 2)))))
      rejection(exit)
      assert.strictEqual(yield* Ref.get(runs), 2)
      yield* TestClock.adjust("5 seconds")
      yield* Stream.runDrain(breaker.protectStream(counted(Stream.make(1, 2))))
      assert.strictEqual(yield* breaker.state, "closed")
    })
  )

  it.effect("logs state changes with the backend name", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const capture = Logger.make<unknown, void>(({ annotations, logLevel }) => {
        const backendName = Array.from(annotations).find(([key]) => key === "backend")?.[1]
        lines.push(`${logLevel.label}:${String(backendName)}`)
      })
      yield* Effect.gen(function* () {
        const { fail, succeed } = yield* setup({ consecutiveFailures: 1 })
        yield* fail()
        yield* TestClock.adjust("5 seconds")
        yield* succeed
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      assert.deepStrictEqual(lines, [`WARN:${backend}`, `INFO:${backend}`, `INFO:${backend}`])
    })
  )

  it.effect("the service keeps one breaker per name", () =>
    Effect.gen(function* () {
      const registry = yield* CircuitBreaker.CircuitBreaker
      const a = yield* registry.breaker("http://a", { consecutiveFailures: 1 })
      const again = yield* registry.breaker("http://a")
      const b = yield* registry.breaker("http://b")
      assert.strictEqual(a, again)
      assert.notStrictEqual(a, b)
      yield* Effect.exit(a.protect(Effect.fail(transport)))
      assert.strictEqual(yield* again.state, "open")
      assert.strictEqual(yield* b.state, "closed")
      assert.strictEqual((yield* registry.all).length, 2)
    }).pipe(Effect.provide(CircuitBreaker.CircuitBreaker.Default))
  )
})
