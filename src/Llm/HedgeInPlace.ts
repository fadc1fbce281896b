/**
 * The first attempt of a hedged unary call on the caller's own fiber: no child fiber and no watcher, only a
 * `setTimeout` for the next check. Watch.ts forks the attempt so that a hedge can race it; that fork was ~100 µs
 * of CPU per call at zero latency (bench/overhead), paid by every call for hedges that start on a few. Here the
 * fork happens only when a hedge starts: the hedge (and any later one, Hedge.ts `arms`) runs in a fiber of its own.
 * The first to end wins, well or badly, as in Hedge.ts:
 * - the first attempt ends first: the hedge is interrupted;
 * - the hedge ends first: the first attempt's exchange is cut (Ollama/Cut.ts: its request aborted, the attempt
 *   failed with an interruption, as its fiber's interruption would) and the hedge's result is the call's.
 *
 * Used only where it holds: Effect's live Clock (under TestClock the timer must be the Clock's), no span exported
 * (traced exchanges go through the HttpClient, which has no cut), and an attempt whose every exchange can be cut
 * (Pipeline.ts asks the backends' clients). Otherwise `otherwise` (Watch.ts) runs.
 *
 * Known limit: an attempt that is not in an exchange when the hedge ends (re-queued after 503 busy, waiting for a
 * slot again) gives way only when its next exchange starts, which then ends at once.
 */
import { Clock, Context, Effect, Exit, Fiber, Runtime } from "effect"
import * as Spans from "../Observability/Spans.js"
import * as Cut from "../Ollama/Cut.js"
import type { Mark } from "./Hedge.js"
import * as Watch from "./Watch.js"

/** At a check: ms until the next one (`Infinity`: none), or the hedge to start beside the attempt. */
export type Check<A, E, R> = (mark: Mark) => number | Effect.Effect<A, E, R>

export const run = <A, E, R>(
  own: (mark: Mark) => Effect.Effect<A, E, R>,
  check: Check<A, E, R>,
  otherwise: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime<A, E, R>((fiber) => {
    if (Context.get(fiber.currentDefaultServices, Clock.Clock) !== Watch.liveClock || Spans.exported(fiber)) {
      return otherwise
    }
    const mark: Mark = { at: undefined }
    const cut: Cut.Cut = { end: undefined, cut: false }
    let settled = false
    let timer: ReturnType<typeof setTimeout> | undefined
    let rival: Fiber.RuntimeFiber<A, E> | undefined
    let won: Exit.Exit<A, E> | undefined
    const next = () => {
      timer = undefined
      if (settled) return
      const due = check(mark)
      if (typeof due === "number") {
        if (due !== Infinity) timer = setTimeout(next, due)
        return
      }
      const runtime = Runtime.make({
        context: fiber.currentContext as Context.Context<R>,
        fiberRefs: fiber.getFiberRefs(),
        runtimeFlags: Runtime.defaultRuntime.runtimeFlags
      })
      rival = Runtime.runFork(runtime)(due)
      rival.addObserver((exit) => {
        if (settled) return
        won = exit
        cut.cut = true
        cut.end?.()
      })
    }
    // the first check is at once, as Watch.ts's: the attempt has not marked its start yet
    next()
    Cut.attach(fiber, cut)
    const settle = (exit: Exit.Exit<A, E>): Effect.Effect<A, E> => {
      settled = true
      if (timer !== undefined) clearTimeout(timer)
      Cut.detach(fiber)
      if (won !== undefined) return won
      if (rival === undefined) return exit
      return Effect.zipRight(Fiber.interrupt(rival), exit)
    }
    return Effect.uninterruptibleMask((restore) =>
      Effect.matchCauseEffect(restore(own(mark)), {
        onFailure: (cause) => settle(Exit.failCause(cause)),
        onSuccess: (value) => settle(Exit.succeed(value))
      })
    )
  })
