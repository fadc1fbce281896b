/**
 * Time bounds of one LLM call (ARCHITECTURE.md §3, "timeout"): a per-attempt timeout for unary calls, a
 * first-token and an idle-between-chunks timeout for streams, and an overall deadline per call (unary or stream).
 * Every bound fails with a `TimeoutError` naming the backend, the method, the phase and the limit in ms.
 *
 * Choices:
 * - A bound that is `undefined`, zero, negative or infinite means "no bound": the effect or stream is returned as is.
 * - On timeout the inner effect (or the stream's producer) is interrupted, and the error is raised once that
 *   interruption is done, so an aborted HTTP request is really gone when the caller sees the `TimeoutError`.
 * - Stream timeouts are measured per pulled chunk: the first non-empty chunk ends the first-token phase; after it,
 *   each pull must deliver the next chunk within `idle`. The clock of a pull starts when the consumer asks for it,
 *   so a slow consumer never makes the producer look idle.
 * - `deadlineStream` bounds the whole stream, from its start to its end, however steadily chunks flow.
 * - All time comes from `Clock`, so tests drive it with `TestClock`.
 */
import { Chunk, Duration, Effect, Fiber, Option, Stream } from "effect"
import { TimeoutError } from "../Domain/LlmError.js"
import * as Deadline from "../Ollama/Deadline.js"
import * as Watch from "./Watch.js"

/** The bounds of a call; an absent field means no bound of that kind. */
export interface Options {
  /** One try of a unary call. */
  readonly attempt?: Duration.DurationInput | undefined
  /** From the start of a stream to its first chunk (a cold model load is slow). */
  readonly firstToken?: Duration.DurationInput | undefined
  /** The longest gap between two chunks of a stream. */
  readonly idle?: Duration.DurationInput | undefined
  /** The whole call, retries included. */
  readonly deadline?: Duration.DurationInput | undefined
}

/** The defaults, in one place. */
export const defaults: Options = {
  attempt: "5 minutes",
  firstToken: "2 minutes",
  idle: "1 minute",
  deadline: "10 minutes"
}

/** Where a call goes, for the error. */
export interface Where {
  readonly backend: string
  readonly method: string
}

/** The phase a `TimeoutError` of this module names. */
export type Phase = "attempt" | "first-token" | "idle" | "deadline"

/** The bound as a Duration, or `undefined` when there is none (absent, not positive, or infinite). */
const bound = (timeout: Duration.DurationInput | undefined): Duration.Duration | undefined => {
  if (timeout === undefined) return undefined
  const duration = Duration.decode(timeout)
  const ms = Duration.toMillis(duration)
  return ms > 0 && Number.isFinite(ms) ? duration : undefined
}

const timeoutError = (where: Where, phase: Phase, duration: Duration.Duration): TimeoutError =>
  new TimeoutError({ backend: where.backend, method: where.method, phase, timeoutMs: Duration.toMillis(duration) })

/** Bounds a unary call (one attempt, or the whole call with phase "deadline"); interrupts it on timeout. */
export const unary =
  (where: Where, timeout: Duration.DurationInput | undefined, phase: "attempt" | "deadline" = "attempt") =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | TimeoutError, R> => {
    const duration = bound(timeout)
    if (duration === undefined) return effect
    return Effect.timeoutFail(effect, { duration, onTimeout: () => timeoutError(where, phase, duration) })
  }

/** When a call that starts at `start` (Clock ms) must end: `Infinity` without a deadline. */
export const deadlineAt = (start: number, deadline: Duration.DurationInput | undefined): number => {
  const duration = bound(deadline)
  return duration === undefined ? Infinity : start + Duration.toMillis(duration)
}

/** The error of a call whose deadline (of `deadline`) passed. */
export const deadlineError = (where: Where, deadline: Duration.DurationInput | undefined): TimeoutError =>
  timeoutError(where, "deadline", bound(deadline) ?? Duration.zero)

/**
 * Bounds one attempt of a call by the tighter of the attempt bound and what is left of the call's deadline
 * (`until`, Clock ms; see `deadlineAt`), naming the phase that bound it. The engine bounds the rest of a call by
 * the same instant (the slot wait, the retry policy), so a call costs one timer per attempt, not a second race
 * around the whole call (each race forks two fibers: ~0.13 ms of CPU per call at zero latency, bench/overhead).
 * When the attempt is one exchange of a client that enforces deadlines itself (`enforced`: OllamaClient's pooled
 * client, Ollama/Deadline.ts) and time is Effect's live Clock, the instant is handed down to the exchange (one
 * `setTimeout` beside the request, no fiber); otherwise the timer is Watch.ts's (one child fiber, no race).
 */
export const attemptWithin =
  (
    where: { readonly attempt: Where; readonly deadline: Where },
    timeouts: Pick<Options, "attempt" | "deadline">,
    until: number,
    enforced = false
  ) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | TimeoutError, R> =>
    // clockWith's body runs each time the attempt runs (no `suspend` needed for a fresh reading)
    Effect.clockWith((clock): Effect.Effect<A, E | TimeoutError, R> => {
      const own = bound(timeouts.attempt)
      const now = clock.unsafeCurrentTimeMillis()
      const left = until - now
      if (left <= 0) return Effect.fail(deadlineError(where.deadline, timeouts.deadline))
      const attempt = own !== undefined && Duration.toMillis(own) <= left
      if (!attempt && !Number.isFinite(left)) return effect
      const ms = attempt ? Duration.toMillis(own) : left
      const error = attempt
        ? () => timeoutError(where.attempt, "attempt", own)
        : () => deadlineError(where.deadline, timeouts.deadline)
      if (enforced && clock === Watch.liveClock) return Deadline.within({ atMs: now + ms, error })(effect)
      return failAfter(effect, ms, error)
    })

/**
 * `Effect.timeoutFail` on one child fiber and one timer (Watch.ts): after `ms` the effect is interrupted, and once
 * it is gone the call fails with `error()`.
 */
const failAfter = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  ms: number,
  error: () => TimeoutError
): Effect.Effect<A, E | TimeoutError, R> => {
  let armed = false
  return Watch.watch<A, E | TimeoutError, R>(effect, (fiber) => {
    if (armed) return Effect.zipRight(Fiber.interrupt(fiber), Effect.fail(error()))
    armed = true
    return ms
  })
}

/** Bounds the wait for a stream's first chunk (`firstToken`) and every later gap between chunks (`idle`). */
export const stream =
  (
    where: Where,
    options: {
      readonly firstToken?: Duration.DurationInput | undefined
      readonly idle?: Duration.DurationInput | undefined
    }
  ) =>
  <A, E, R>(self: Stream.Stream<A, E, R>): Stream.Stream<A, E | TimeoutError, R> => {
    const firstToken = bound(options.firstToken)
    const idle = bound(options.idle)
    if (firstToken === undefined && idle === undefined) return self
    return Stream.unwrapScoped(
      Effect.map(Stream.toPull(self), (pull) => {
        let started = false
        const next = Effect.suspend(() => {
          const [phase, duration] = started ? (["idle", idle] as const) : (["first-token", firstToken] as const)
          const bounded: Effect.Effect<Chunk.Chunk<A>, Option.Option<E | TimeoutError>, R> = duration === undefined
            ? pull
            : Effect.timeoutFail(pull, { duration, onTimeout: () => Option.some(timeoutError(where, phase, duration)) })
          return Effect.tap(bounded, (chunk) => {
            if (Chunk.isNonEmpty(chunk)) started = true
          })
        })
        return Stream.repeatEffectChunkOption(next)
      })
    )
  }

/**
 * Bounds a whole stream, from its start to its end; the producer is interrupted when the deadline passes.
 * `spentMs` of it were already used (the call's wait for admission).
 */
export const deadlineStream =
  (where: Where, timeout: Duration.DurationInput | undefined, spentMs = 0) =>
  <A, E, R>(self: Stream.Stream<A, E, R>): Stream.Stream<A, E | TimeoutError, R> => {
    const duration = bound(timeout)
    if (duration === undefined) return self
    const error = timeoutError(where, "deadline", duration)
    const left = Duration.toMillis(duration) - spentMs
    if (left <= 0) return Stream.fail(error)
    return Stream.interruptWhen(self, Effect.zipRight(Effect.sleep(Duration.millis(left)), Effect.fail(error)))
  }
