/**
 * The gateway's drain deadline for unary handlers (Http/Deadline.ts): the call's own result before the deadline,
 * the fiber running it interrupted at it (the call's finalizers run), `ShuttingDown` without starting after it, and
 * `Shutdown.untilDeadline` where no watcher runs. What a client then reads (503 `ShuttingDown` in each API's shape)
 * is in DrainDeadline.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Ref, TestClock } from "effect"
import * as Shutdown from "../../src/Lifecycle/Shutdown.js"
import * as Deadline from "../../src/Http/Deadline.js"

const watched = Deadline.layer.pipe(Layer.provideMerge(Shutdown.layer()))

/** An effect that never ends by itself and records its interruption. */
const hanging = (interrupted: Ref.Ref<boolean>) => Effect.onInterrupt(Effect.never, () => Ref.set(interrupted, true))

const passDeadline = Effect.flatMap(Shutdown.Drain, (drain) => Deferred.succeed(drain.deadline, undefined))

describe("Deadline.untilDeadline", () => {
  it.scoped("a call that ends before the deadline keeps its value and its failure", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* Deadline.untilDeadline(Effect.succeed(42)), 42)
      const failed = yield* Effect.exit(Deadline.untilDeadline(Effect.fail("boom")))
      assert.deepStrictEqual(failed, Exit.fail("boom"))
    }).pipe(Effect.provide(watched))
  )

  it.scoped("a call still running at the deadline ends the fiber running it, and the call is interrupted", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(false)
      const call = yield* Effect.fork(Deadline.untilDeadline(hanging(interrupted)))
      yield* Effect.yieldNow()
      yield* passDeadline
      const exit = yield* Fiber.await(call)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.isTrue(yield* Ref.get(interrupted))
    }).pipe(Effect.provide(watched))
  )

  it.scoped("a call that ended before the deadline is not interrupted by it later", () =>
    Effect.gen(function* () {
      const after = yield* Effect.fork(
        Effect.zipRight(Deadline.untilDeadline(Effect.succeed(1)), Effect.as(Effect.sleep("50 millis"), "done"))
      )
      yield* Effect.yieldNow()
      yield* passDeadline
      yield* Effect.yieldNow()
      yield* TestClock.adjust("50 millis")
      assert.deepStrictEqual(yield* Fiber.await(after), Exit.succeed("done"))
    }).pipe(Effect.provide(watched))
  )

  it.scoped("of many calls, those running at the deadline end, those that ended (their places reused) do not", () =>
    Effect.gen(function* () {
      const flags = yield* Effect.all(Array.from({ length: 2 }, () => Ref.make(false)))
      const gates = yield* Effect.all(Array.from({ length: 2 }, () => Deferred.make<number>()))
      // two calls that end before the deadline, two that hang; a later call takes the place of an ended one
      const early = yield* Effect.fork(Deadline.untilDeadline(Deferred.await(gates[0]!)))
      const hung = yield* Effect.fork(Deadline.untilDeadline(hanging(flags[0]!)))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gates[0]!, 1)
      assert.deepStrictEqual(yield* Fiber.await(early), Exit.succeed(1))
      const reused = yield* Effect.fork(Deadline.untilDeadline(hanging(flags[1]!)))
      const second = yield* Effect.fork(
        Effect.zipRight(Deadline.untilDeadline(Deferred.await(gates[1]!)), Effect.as(Effect.sleep("50 millis"), 2))
      )
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gates[1]!, 2)
      yield* Effect.yieldNow()
      yield* passDeadline
      for (const call of [hung, reused]) assert.isTrue(Exit.isInterrupted(yield* Fiber.await(call)))
      assert.deepStrictEqual([yield* Ref.get(flags[0]!), yield* Ref.get(flags[1]!)], [true, true])
      yield* TestClock.adjust("50 millis")
      assert.deepStrictEqual(yield* Fiber.await(second), Exit.succeed(2))
    }).pipe(Effect.provide(watched))
  )

  it.scoped("after the deadline a new call fails at once, without starting", () =>
    Effect.gen(function* () {
      yield* passDeadline
      yield* Effect.yieldNow()
      const started = yield* Ref.make(false)
      const error = yield* Effect.flip(Deadline.untilDeadline(Effect.zipRight(Ref.set(started, true), Effect.never)))
      assert.strictEqual(error._tag, "ShuttingDown")
      assert.isFalse(yield* Ref.get(started))
    }).pipe(Effect.provide(watched))
  )

  it.scoped("interrupting the caller interrupts the call", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(false)
      const call = yield* Effect.fork(Deadline.untilDeadline(hanging(interrupted)))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(call)
      assert.isTrue(yield* Ref.get(interrupted))
    }).pipe(Effect.provide(watched))
  )

  it.scoped("without the watcher it is Shutdown.untilDeadline; without a Drain the effect unchanged", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* Deadline.untilDeadline(Effect.succeed(1)), 1)
      const interrupted = yield* Ref.make(false)
      const call = yield* Effect.fork(Deadline.untilDeadline(hanging(interrupted)))
      yield* Effect.yieldNow()
      yield* passDeadline
      const error = yield* Effect.flip(Fiber.join(call))
      assert.strictEqual(error._tag, "ShuttingDown")
    }).pipe(Effect.provide(Shutdown.layer()), Effect.zipRight(Deadline.untilDeadline(Effect.succeed(2))))
  )
})
