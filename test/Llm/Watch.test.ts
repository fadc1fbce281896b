/**
 * Watch (the timer of attempt timeouts and hedges) and the hedger on it, on both clocks: Effect's live Clock (a
 * `setTimeout`) and the TestClock (a race with `Effect.sleep`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option, Ref, TestClock } from "effect"
import { TimeoutError } from "../../src/Domain/LlmError.js"
import * as Hedge from "../../src/Llm/Hedge.js"
import * as Timeouts from "../../src/Llm/Timeouts.js"
import * as Watch from "../../src/Llm/Watch.js"

const where = { attempt: { backend: "b", method: "chat" }, deadline: { backend: "engine", method: "chat" } }

/** An attempt that only ends when interrupted, recording that it was. */
const hanging = (interrupted: Ref.Ref<boolean>) =>
  Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true)))

describe("Watch", () => {
  it.effect("checks at the instants asked for; the effect's own result when it ends first (TestClock)", () =>
    Effect.gen(function* () {
      let checks = 0
      const done = yield* Deferred.make<number>()
      const fiber = yield* Effect.fork(
        Watch.watch(Deferred.await(done), () => {
          checks += 1
          return 100
        })
      )
      yield* TestClock.adjust("250 millis")
      assert.strictEqual(checks, 3, "at 0, 100 and 200 ms")
      yield* Deferred.succeed(done, 7)
      assert.strictEqual(yield* Fiber.join(fiber), 7)
    })
  )

  it.effect("an attempt timeout interrupts the attempt, then fails (TestClock)", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(false)
      const fiber = yield* Effect.fork(
        Timeouts.attemptWithin(where, { attempt: "1 second" }, Infinity)(hanging(interrupted))
      )
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.instanceOf(error, TimeoutError)
      assert.deepInclude(error, { phase: "attempt", timeoutMs: 1000 })
      assert.isTrue(yield* Ref.get(interrupted))
    })
  )

  it.live("on the live clock: a timeout fires, an early end clears the timer, interruption reaches the attempt", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(false)
      const timedOut = yield* Effect.flip(
        Timeouts.attemptWithin(where, { attempt: "30 millis" }, Infinity)(hanging(interrupted))
      )
      assert.deepInclude(timedOut, { _tag: "TimeoutError", phase: "attempt" })
      assert.isTrue(yield* Ref.get(interrupted))
      assert.strictEqual(yield* Timeouts.attemptWithin(where, { attempt: "1 minute" }, Infinity)(Effect.succeed(1)), 1)
      const inner = yield* Ref.make(false)
      const caller = yield* Effect.fork(
        Timeouts.attemptWithin(where, { attempt: "1 minute" }, Infinity)(hanging(inner))
      )
      yield* Effect.sleep("10 millis")
      assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(caller)))
      assert.isTrue(yield* Ref.get(inner), "the caller's interruption interrupts the watched attempt")
    })
  )

  it.live("a stalled attempt is hedged on the live clock: the second attempt wins, the first is interrupted", () =>
    Effect.gen(function* () {
      const hedger = yield* Hedge.make({ floor: "20 millis", coldAfter: "20 millis" })
      const stalled = yield* Ref.make(false)
      const attempts = yield* Ref.make(0)
      const attempt = (mark: Hedge.Mark) =>
        Effect.flatMap(
          Ref.getAndUpdate(attempts, (n) => n + 1),
          (n) => Effect.zipRight(Hedge.start(mark), n === 0 ? hanging(stalled) : Effect.succeed("second"))
        )
      assert.strictEqual(yield* hedger.run("chat m", attempt), "second")
      assert.strictEqual(yield* hedger.hedges, 1)
      assert.isTrue(yield* Ref.get(stalled), "the stalled attempt was interrupted")
      // an attempt that ends in time is never hedged
      assert.strictEqual(yield* hedger.run("chat m", (mark) => Effect.as(Hedge.start(mark), "fast")), "fast")
      assert.strictEqual(yield* hedger.hedges, 1)
    })
  )
})
