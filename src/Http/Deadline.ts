/**
 * The drain deadline for the gateway's unary handlers: a call still running when the deadline passes is
 * interrupted and the handler gets `ShuttingDown`, answered in its family's error shape (DrainMiddleware.ts).
 *
 * Choices:
 * - The same result as `Shutdown.untilDeadline`, cheaper per request: that one races the call with a wait on the
 *   deadline (`Effect.raceFirst`: two forked fibers, their fiber refs joined, the loser interrupted), and built a
 *   `ShuttingDown` (a stack trace) on every call; ~80 µs of CPU per request (the gateway bench). Here the call runs
 *   in one child fiber and the deadline is a plain callback: one watcher fiber per server (`layer`) waits on the
 *   deadline and calls the callbacks of the calls in flight, each registered for the time of its call.
 * - Once the deadline passed, a call is not started at all.
 * - Without the watcher (routes served outside `Server.layer`, or no Drain) it falls back to
 *   `Shutdown.untilDeadline`, so behaviour never depends on which path ran.
 */
import { Context, Deferred, Effect, type Exit, Fiber, Layer, Option } from "effect"
import { ShuttingDown } from "../Domain/LlmError.js"
import * as Shutdown from "../Lifecycle/Shutdown.js"

/** The calls waiting on one drain's deadline, and whether it passed. */
interface Watch {
  passed: boolean
  readonly waiting: Set<() => void>
}

const watches = new WeakMap<Shutdown.Service, Watch>()

/** Watches the drain's deadline for the server's lifetime, so `untilDeadline` needs no fiber of its own to wait. */
export const layer: Layer.Layer<never, never, Shutdown.Drain> = Layer.scopedDiscard(
  Effect.flatMap(Shutdown.Drain, (drain) => {
    const watch: Watch = { passed: false, waiting: new Set() }
    watches.set(drain, watch)
    const fire = Effect.sync(() => {
      watch.passed = true
      for (const callback of watch.waiting) callback()
      watch.waiting.clear()
    })
    return Effect.forkScoped(Effect.zipRight(Deferred.await(drain.deadline), fire))
  })
)

/** Runs `effect` in a child fiber until it ends or the deadline passes (then: interrupted, `ShuttingDown`). */
const race = <A, E, R>(watch: Watch, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | ShuttingDown, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.fork(restore(effect)), (fiber) => {
      const outcome = Effect.async<A, E | ShuttingDown>((resume) => {
        let settled = false
        const end = (result: Effect.Effect<A, E | ShuttingDown>) => {
          if (settled) return
          settled = true
          watch.waiting.delete(passed)
          fiber.removeObserver(ended)
          resume(result)
        }
        // the call's exit as it is: its FiberRef changes are not joined back (no unary engine call sets a FiberRef
        // that outlives it; the join, a merge of every FiberRef, was ~3 % of the gateway's CPU per request)
        const ended = (exit: Exit.Exit<A, E>) => end(exit)
        const passed = () => end(Effect.zipRight(Fiber.interrupt(fiber), Effect.fail(new ShuttingDown())))
        watch.waiting.add(passed)
        fiber.addObserver(ended)
        return Effect.sync(() => end(Effect.never))
      })
      return Effect.onInterrupt(restore(outcome), () => Fiber.interrupt(fiber))
    })
  )

/**
 * Ends `effect` with `ShuttingDown` when the drain deadline passes; `effect` unchanged without a Drain. The wait is
 * interruptible (the server runs handlers' surroundings uninterruptibly); interrupting it interrupts the call.
 */
export const untilDeadline = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | ShuttingDown, R> =>
  Effect.withFiberRuntime((fiber) => {
    const drain = Context.getOption(fiber.currentContext, Shutdown.Drain)
    if (Option.isNone(drain)) return effect
    const watch = watches.get(drain.value)
    if (watch === undefined) return Shutdown.untilDeadline(effect)
    return watch.passed ? Effect.fail(new ShuttingDown()) : race(watch, effect)
  })
