/**
 * An effect watched by a timer: the engine's per-attempt timeout (Timeouts.ts) and its hedging (Hedge.ts) both
 * run an attempt and, if it is still running at some instant, do something else (fail, or start a second attempt
 * beside it). `watch` runs the effect in one child fiber and waits for it or the next check, whichever is first.
 *
 * Why not `Effect.timeoutFail` and `Effect.raceWith`: each forks two fibers around the effect (and the timer side
 * sleeps in a fiber of its own), joins fiber refs and interrupts the loser; at zero latency that was ~45 µs and
 * ~90 µs of CPU per call (bench/overhead). Here: one child fiber, and on Effect's live Clock a plain `setTimeout`
 * cleared when the effect ends. Under any other Clock (TestClock in tests) the wait is a race of the fiber with
 * `Effect.sleep`, so time stays test-driven; either way `check` decides the same things at the same instants.
 */
import { Clock, Context, Effect, Exit, Fiber } from "effect"

/** At a check: how long until the next one (ms; `Infinity`: none, wait for the effect), or what to do instead. */
export type Check<A, E, R> = (fiber: Fiber.RuntimeFiber<A, E>) => number | Effect.Effect<A, E, R>

/** Effect's built-in Clock, whose `sleep` is a `setTimeout` and whose time is `Date.now()`. */
export const liveClock: Clock.Clock = Effect.runSync(Effect.clock)

/**
 * The fiber's result; if the waiter is interrupted (the loser of a later race, a caller gone) the fiber is
 * interrupted too, and a value it had produced all the same goes to `discard`.
 */
export const joinOwned = <A, E>(
  fiber: Fiber.RuntimeFiber<A, E>,
  discard: (value: A) => Effect.Effect<void> = () => Effect.void
): Effect.Effect<A, E> =>
  Effect.onInterrupt(Fiber.join(fiber), () =>
    Effect.flatMap(Fiber.interrupt(fiber), (exit) => (Exit.isSuccess(exit) ? discard(exit.value) : Effect.void))
  )

/** True when the fiber ended, false when `ms` passed first (a `setTimeout`, cleared if the fiber ends first). */
const liveWait = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, ms: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    let done = false
    const end = (ended: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      fiber.removeObserver(observer)
      resume(Effect.succeed(ended))
    }
    const observer = () => end(true)
    const timer = setTimeout(() => end(false), ms)
    fiber.addObserver(observer)
    return Effect.sync(() => end(true))
  })

/** The same under another Clock: the fiber raced with `Effect.sleep`. */
const clockWait = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, ms: number): Effect.Effect<boolean> =>
  Effect.raceWith(Fiber.await(fiber), Effect.sleep(ms), {
    onSelfDone: (_, sleeper) => Effect.as(Fiber.interrupt(sleeper), true),
    onOtherDone: (_, awaiter) => Effect.as(Fiber.interrupt(awaiter), false)
  })

/**
 * Runs `self` in a child fiber and calls `check` at once and then at each instant it asks for: a number is the
 * wait until the next check, an effect takes over (it owns the fiber: interrupt or join it). Without a take-over,
 * the result is `self`'s. Interrupting the caller interrupts the fiber; the effect's fiber refs are joined back.
 */
export const watch = <A, E, R>(self: Effect.Effect<A, E, R>, check: Check<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((parent) => {
    const live = Context.get(parent.currentDefaultServices, Clock.Clock) === liveClock
    const wait = live ? liveWait : clockWait
    const loop = (fiber: Fiber.RuntimeFiber<A, E>): Effect.Effect<A, E, R> => {
      const next = check(fiber)
      if (typeof next !== "number") return next
      if (next === Infinity) return joinOwned(fiber)
      return Effect.flatMap(wait(fiber, Math.max(0, next)), (ended) => (ended ? Fiber.join(fiber) : loop(fiber)))
    }
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.fork(restore(self)), (fiber) =>
        Effect.onInterrupt(restore(loop(fiber)), () => Fiber.interrupt(fiber))
      )
    )
  })
