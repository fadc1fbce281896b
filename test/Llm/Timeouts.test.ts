/** Timeouts under the TestClock: attempt, first-token, idle and deadline bounds, and interruption on timeout. */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Option, Ref, Stream, TestClock } from "effect"
import { TimeoutError } from "../../src/Domain/LlmError.js"
import * as Timeouts from "../../src/Llm/Timeouts.js"

const where = { backend: "http://a:11434", method: "chat" }

/** Emits 0, 1, 2, ... each after the given gap (ms) since the previous pull. */
const paced = (gaps: ReadonlyArray<number>): Stream.Stream<number> =>
  Stream.fromIterable(gaps.map((gap, i) => [gap, i] as const)).pipe(
    Stream.mapEffect(([gap, i]) => Effect.as(Effect.sleep(Duration.millis(gap)), i))
  )

const assertTimeout = (error: unknown, phase: Timeouts.Phase, timeoutMs: number) => {
  assert.instanceOf(error, TimeoutError)
  const timeout = error as TimeoutError
  assert.strictEqual(timeout.phase, phase)
  assert.strictEqual(timeout.timeoutMs, timeoutMs)
  assert.strictEqual(timeout.backend, where.backend)
  assert.strictEqual(timeout.method, where.method)
}

describe("Timeouts.unary", () => {
  it.effect("fires at exactly the limit, not before, and interrupts the call", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(false)
      const call = Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true)))
      const fiber = yield* Effect.fork(call.pipe(Timeouts.unary(where, "1 second")))
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      assert.isFalse(yield* Ref.get(interrupted))
      yield* TestClock.adjust("1 millis")
      assertTimeout(yield* Effect.flip(Fiber.join(fiber)), "attempt", 1000)
      assert.isTrue(yield* Ref.get(interrupted))
    })
  )

  it.effect("lets a call that finishes in time through; names the deadline phase", () =>
    Effect.gen(function* () {
      const fast = yield* Effect.fork(
        Effect.as(Effect.sleep("2 seconds"), "ok").pipe(Timeouts.unary(where, "3 seconds"))
      )
      const slow = yield* Effect.fork(Effect.sleep("2 minutes").pipe(Timeouts.unary(where, "1 minute", "deadline")))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Fiber.join(fast), "ok")
      assertTimeout(yield* Effect.flip(Fiber.join(slow)), "deadline", 60_000)
    })
  )

  it.effect("no bound when the timeout is undefined or zero", () =>
    Effect.gen(function* () {
      const a = yield* Effect.fork(Effect.as(Effect.sleep("1 hour"), 1).pipe(Timeouts.unary(where, undefined)))
      const b = yield* Effect.fork(Effect.as(Effect.sleep("1 hour"), 2).pipe(Timeouts.unary(where, 0)))
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* Fiber.join(a), 1)
      assert.strictEqual(yield* Fiber.join(b), 2)
    })
  )
})

describe("Timeouts.stream", () => {
  it.effect("first-token fires when no chunk arrives in time, and interrupts the producer", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(false)
      const producer = Stream.fromEffect(Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true))))
      const fiber = yield* Effect.fork(
        Stream.runCollect(producer.pipe(Timeouts.stream(where, { firstToken: "2 seconds", idle: "10 seconds" })))
      )
      yield* TestClock.adjust("1999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust("1 millis")
      assertTimeout(yield* Effect.flip(Fiber.join(fiber)), "first-token", 2000)
      assert.isTrue(yield* Ref.get(interrupted))
    })
  )

  it.effect("first-token does not fire once chunks flow", () =>
    Effect.gen(function* () {
      const gaps = [1500, 1000, 1000, 1000, 1000, 1000]
      const fiber = yield* Effect.fork(
        Stream.runCollect(paced(gaps).pipe(Timeouts.stream(where, { firstToken: "2 seconds", idle: "1500 millis" })))
      )
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(fiber)), [0, 1, 2, 3, 4, 5])
    })
  )

  it.effect("idle fires when the gap between chunks exceeds it; the caller has the earlier chunks", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<Array<number>>([])
      const stream = paced([100, 500, 500, 5000, 100]).pipe(
        Timeouts.stream(where, { firstToken: "1 second", idle: "2 seconds" }),
        Stream.tap((n) => Ref.update(seen, (xs) => [...xs, n]))
      )
      const fiber = yield* Effect.fork(Stream.runDrain(stream))
      yield* TestClock.adjust("3099 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust("1 millis")
      assertTimeout(yield* Effect.flip(Fiber.join(fiber)), "idle", 2000)
      assert.deepStrictEqual(yield* Ref.get(seen), [0, 1, 2])
    })
  )

  it.effect("idle alone leaves the first chunk unbounded", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(
        Stream.runCollect(paced([60_000, 100]).pipe(Timeouts.stream(where, { idle: "1 second" })))
      )
      yield* TestClock.adjust("61 seconds")
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(fiber)), [0, 1])
    })
  )
})

describe("Timeouts.attemptWithin", () => {
  const engine = { backend: "engine", method: "chat" }
  const both = { attempt: where, deadline: engine }
  const timeouts: Timeouts.Options = { attempt: "2 seconds", deadline: "10 seconds" }

  it.effect("the attempt bound applies while it is the tighter one", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(Effect.never.pipe(Timeouts.attemptWithin(both, timeouts, 10_000)))
      yield* TestClock.adjust("2 seconds")
      assertTimeout(yield* Effect.flip(Fiber.join(fiber)), "attempt", 2000)
    })
  )

  it.effect("what is left of the call's deadline applies when it is tighter, named as the deadline", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust("9 seconds")
      const fiber = yield* Effect.fork(Effect.never.pipe(Timeouts.attemptWithin(both, timeouts, 10_000)))
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.deepInclude(error, { phase: "deadline", timeoutMs: 10_000, backend: "engine" })
    })
  )

  it.effect("a deadline already past fails at once without running the attempt", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust("10 seconds")
      const ran = yield* Ref.make(false)
      const error = yield* Effect.flip(Ref.set(ran, true).pipe(Timeouts.attemptWithin(both, timeouts, 10_000)))
      assert.deepInclude(error, { phase: "deadline", timeoutMs: 10_000 })
      assert.isFalse(yield* Ref.get(ran))
    })
  )
})

describe("Timeouts.deadlineStream", () => {
  it.effect("caps a slow-but-steady stream and interrupts it", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make(0)
      const interrupted = yield* Ref.make(false)
      const steady = Stream.repeatEffect(Effect.as(Effect.sleep("1 second"), 1)).pipe(
        Stream.ensuring(Ref.set(interrupted, true))
      )
      const stream = steady.pipe(
        Timeouts.stream(where, { firstToken: "2 seconds", idle: "2 seconds" }),
        Timeouts.deadlineStream(where, "5500 millis"),
        Stream.tap(() => Ref.update(seen, (n) => n + 1))
      )
      const fiber = yield* Effect.fork(Stream.runDrain(stream))
      yield* TestClock.adjust("5499 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust("1 millis")
      assertTimeout(yield* Effect.flip(Fiber.join(fiber)), "deadline", 5500)
      assert.strictEqual(yield* Ref.get(seen), 5)
      assert.isTrue(yield* Ref.get(interrupted))
    })
  )

  it.effect("lets a stream that ends in time through", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(
        Stream.runCollect(paced([1000, 1000]).pipe(Timeouts.deadlineStream(where, "3 seconds")))
      )
      yield* TestClock.adjust("3 seconds")
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(fiber)), [0, 1])
    })
  )
})
