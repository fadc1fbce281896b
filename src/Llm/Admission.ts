/**
 * Admission: an engine call (unary or streamed) that will go upstream first waits in the line of the backend it
 * will most likely use until that backend's slots admit it (a reserved slot), and only then builds its pipeline
 * (span, deadline, retry, rate limit, breaker, attempt). A call that waits in the line thus costs a parked fiber
 * and a waiter (a few KB), not everything around the slot (bench/memory: ~58 KB per queued call before this). The
 * reservation is claimed by the call's first attempt on that backend (Pipeline.ts); an attempt elsewhere, a
 * coalesced or cached answer, a failure or an interruption gives it back. The stage never refuses a call itself.
 *
 * Choices:
 * - Admission is only a way to wait early: when it cannot reserve (the line is full and the call does not wait, no
 *   backend is a candidate, the deadline passed while waiting) the call simply takes the ordinary path, which
 *   refuses, routes or times out exactly as before, with the same errors, metrics and fallbacks.
 * - The wait counts against the call's deadline: the pipeline gets what is left (`waitedMs`), and the line's
 *   timer (Slots.reserve) ends a wait that outlives the deadline.
 * - Calls a fresh cache entry or an identical call in flight would answer, and single-text embeddings (which the
 *   batcher joins and sends as one call), skip admission: they must not queue behind the misses. So do calls a
 *   budget in scope already refuses (Budget.refusesCall): they fail (or fall back) at once instead of after a wait.
 * - A reservation holds its slot while the call waits for its backend's rate limiter (rate limit -> breaker ->
 *   slot in the pipeline). When a rate limit binds, the backend's slots are not the bottleneck, so nothing is lost.
 */
import { Clock, Duration, Effect } from "effect"
import type { Backend, Backends } from "./Backends.js"
import * as Budget from "./Budget.js"
import type { CachePolicy, ResponseCache } from "./ResponseCache.js"
import type * as Slots from "./Scheduler/Slots.js"

/** The slot reserved for a call (none when admission could not reserve) and how long the call waited for it. */
export interface Admitted {
  readonly backend?: string | undefined
  readonly reservation?: Slots.Reservation | undefined
  readonly waitedMs: number
}

export interface Request {
  readonly model: string
  readonly priority: Slots.Priority
  readonly wait: boolean
  /** The call's deadline, if it has one. */
  readonly deadline: Duration.DurationInput | undefined
}

/** A call that did not wait for admission. */
export const direct: Admitted = { waitedMs: 0 }

/**
 * Whether a call skips admission: its answer is at hand (a fresh cache entry, a flight to follow) or a budget in
 * scope refuses it. Two plain steps: `Effect.zipWith` kept ~0.5 KB per queued call alive.
 */
export const skipsLine = (
  cache: ResponseCache,
  key: string,
  policy: CachePolicy | undefined,
  kind: "unary" | "stream"
): Effect.Effect<boolean> =>
  (policy ?? "use") === "use"
    ? Effect.flatMap(cache.answersNow(key, kind), (answered) => (answered ? Effect.succeed(true) : Budget.refusesCall))
    : Budget.refusesCall

const deadlineMs = (deadline: Duration.DurationInput | undefined): number => {
  if (deadline === undefined) return Infinity
  const ms = Duration.toMillis(Duration.decode(deadline))
  return ms > 0 ? ms : Infinity
}

/**
 * Runs `run` after waiting for a slot on the best candidate (see the module comment). Only the wait is
 * interruptible; a reservation no attempt claimed is given back when `run` ends, however it ends
 * (Slots.withReservation).
 */
export const admit = <A, E, R>(
  backends: Backends,
  request: Request,
  run: (admitted: Admitted) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  // the clock read in place (`clockWith`), not as steps of their own: this runs on every call
  Effect.clockWith((clock) => {
    const start = clock.unsafeCurrentTimeMillis()
    const onBest = (candidates: ReadonlyArray<Backend>) => {
      const backend = candidates[0]
      if (backend === undefined) return run(direct)
      return backend.slots.withReservation(
        request.priority,
        { wait: request.wait, deadlineAt: start + deadlineMs(request.deadline) },
        (reservation) => run({ backend: backend.url, reservation, waitedMs: clock.unsafeCurrentTimeMillis() - start })
      )
    }
    // the choice made in this step when every breaker is closed (Backends.candidatesNow)
    const now = backends.candidatesNow(request.model)
    return now !== undefined ? onBest(now) : Effect.flatMap(backends.candidates(request.model), onBest)
  })

/**
 * The same for a stream, without a Scope of its own (a Scope and the Stream layers around it cost a queued stream
 * ~7 KB, bench/memory): `keep` receives the admission while interruption is masked, so the caller's finalizer
 * (the stream's end, CallStream.ts) can give back a reservation its first attempt did not claim.
 */
export const admitStream = (
  backends: Backends,
  request: Request,
  keep: (admitted: Admitted) => void
): Effect.Effect<Admitted> =>
  Effect.flatMap(Clock.currentTimeMillis, (start) =>
    Effect.flatMap(backends.candidates(request.model), (candidates) => {
      const backend = candidates[0]
      if (backend === undefined) return Effect.succeed(direct)
      const reserve = backend.slots.reserve(request.priority, {
        wait: request.wait,
        deadlineAt: start + deadlineMs(request.deadline)
      })
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(reserve), (reservation) =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            const admitted: Admitted = { backend: backend.url, reservation, waitedMs: now - start }
            keep(admitted)
            return admitted
          })
        )
      )
    })
  )
