/**
 * The retry policy of the engine (ARCHITECTURE.md §3, "Retry(Schedule)"): a named `Schedule` fed with the errors,
 * and helpers that apply it to a unary call or to a stream.
 *
 * Choices:
 * - Backoff: `base × factor^n`, capped at `maxDelay`, then jittered with `Schedule.jittered` (× a random factor in
 *   [0.8, 1.2], from the `Random` service, so tests seed it) and capped again, so a delay never exceeds `maxDelay`
 *   while delays near the cap keep some spread.
 * - Retry-After: the delay is at least the error's `retryAfterMs` (503 busy, open breaker, rate limit), even above
 *   `maxDelay`: the server said when it can serve again.
 * - Attempts: at most `maxRetries` retries (so `maxRetries + 1` attempts), 12 by default within a 30 s window
 *   (`deadline`), with delays capped at 2 s. A flaky backend is ridden out: at a 27 % fault rate a call fails all
 *   13 attempts once in 25 million, and the load a flaky backend sees grows by 1 / (1 - fault rate) whatever the
 *   cap. A dead backend is not hammered: its breaker opens after 20 failures in a row, and an open breaker on
 *   every backend is not retried (its `retried` is false). So the cap only bounds the unlucky tail; Sluice does
 *   not turn a backend a direct client could use into one that fails (issue 11 measured 3 retries losing calls).
 * - Deadline: a retry is made only if it starts within `deadline` of the first failure (the schedule's first
 *   step); when the next delay (Retry-After included) would pass it, the policy gives up with the last error.
 *   The call's own deadline (Timeouts.ts) is no wrapper around the call: for a unary call it is the instant
 *   `until`, after which no retry starts, and which also bounds the slot wait and each attempt
 *   (Timeouts.attemptWithin, Pipeline.ts); a stream is bounded as a whole by `Timeouts.deadlineStream`.
 * - Only errors whose `retried` is true are retried (Domain/LlmError.ts: retryable errors, except 503 busy and
 *   Sluice's own refusals that a retry would defeat: a full queue for a call that chose not to wait, a rate limit
 *   that already waited its maximum, an open breaker on every backend, since the point of a breaker is to fail fast;
 *   the caller gets those with their Retry-After). An open breaker on one backend is retried on another backend.
 * - Streams are retried only while no chunk has reached the caller: once one has, a failure propagates as is, since
 *   a retry would repeat what the caller already has.
 * - `onRetry` runs before each retry's delay (error, retry number from 1, delay), so the engine can count retries.
 * - 503 busy is not retried here but re-queued (`requeue`): the backend is at capacity, not failing, so the call
 *   goes back into its backend's line (whose limit the 503 halved) after a short jittered backoff (25 ms doubling
 *   to 1 s, or the backend's Retry-After), as often as its deadline allows, without spending a retry.
 */
import { Duration, Effect, Ref, Schedule, ScheduleDecision, ScheduleIntervals, Stream } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import * as Recorders from "../Observability/Recorders.js"

/** The knobs of the policy; each absent field takes its value from `defaults`. */
export interface Options {
  /** The first delay, before jitter. */
  readonly base?: Duration.DurationInput
  /** The growth of the delay from one retry to the next. */
  readonly factor?: number
  /** The longest backoff delay (a longer Retry-After still wins). */
  readonly maxDelay?: Duration.DurationInput
  /** Retries after the first attempt. */
  readonly maxRetries?: number
  /** No retry starts later than this after the first failure. */
  readonly deadline?: Duration.DurationInput
  /** Whether delays are jittered (× [0.8, 1.2]). */
  readonly jitter?: boolean
  /** Runs before each retry: the error, the retry number (1, 2, ...) and the delay before it. */
  readonly onRetry?: (error: LlmError, attempt: number, delay: Duration.Duration) => Effect.Effect<void>
  /**
   * No retry starts after this instant (Clock ms): the call's own deadline (Pipeline.ts). A retry that would
   * start later is not made, and the call fails with the last error.
   */
  readonly until?: number
}

/** The defaults, in one place. */
export const defaults: Required<Options> = {
  base: "100 millis",
  factor: 2,
  maxDelay: "2 seconds",
  maxRetries: 12,
  deadline: "30 seconds",
  jitter: true,
  onRetry: () => Effect.void,
  until: Infinity
}

const resolve = (options: Options = {}): Required<Options> => ({
  base: options.base ?? defaults.base,
  factor: options.factor ?? defaults.factor,
  maxDelay: options.maxDelay ?? defaults.maxDelay,
  maxRetries: options.maxRetries ?? defaults.maxRetries,
  deadline: options.deadline ?? defaults.deadline,
  jitter: options.jitter ?? defaults.jitter,
  onRetry: options.onRetry ?? defaults.onRetry,
  until: options.until ?? defaults.until
})

const backoff = (options: Required<Options>): Schedule.Schedule<Duration.Duration> => {
  const cap = Schedule.modifyDelay((_: Duration.Duration, delay: Duration.Duration) =>
    Duration.min(delay, Duration.decode(options.maxDelay))
  )
  const capped = cap(Schedule.exponential(options.base, options.factor))
  return options.jitter ? cap(Schedule.jittered(capped)) : capped
}

/** Waits at least the Retry-After hint of the error, if it has one. */
const retryAfter: Schedule.Schedule<LlmError, LlmError> = Schedule.identity<LlmError>().pipe(
  Schedule.addDelay((error) => Duration.millis(error.retryAfterMs ?? 0))
)

/** The policy without the hook: outputs the delay before the next retry. */
const core = (options: Required<Options>): Schedule.Schedule<Duration.Duration, LlmError> => {
  const deadline = Duration.decode(options.deadline)
  return Schedule.delays(Schedule.intersect(backoff(options), retryAfter)).pipe(
    Schedule.intersect(Schedule.elapsed),
    Schedule.whileOutput(([delay, elapsed]) => Duration.lessThanOrEqualTo(Duration.sum(elapsed, delay), deadline)),
    Schedule.intersect(Schedule.recurs(options.maxRetries)),
    Schedule.whileInput((error: LlmError) => error.retried),
    Schedule.map(([[delay]]) => delay)
  )
}

/** Runs `onRetry` on each step that continues (not on the one that gives up); gives up on retries after `until`. */
const tapRetries = <R>(
  self: Schedule.Schedule<Duration.Duration, LlmError, R>,
  onRetry: Required<Options>["onRetry"],
  until: number
): Schedule.Schedule<Duration.Duration, LlmError, R> =>
  Schedule.makeWithState<readonly [unknown, number], LlmError, Duration.Duration, R>(
    [self.initial, 0],
    (now, error, [state, retries]) =>
      Effect.flatMap(self.step(now, error, state), ([next, delay, decision]) => {
        const result = [[next, retries + 1], delay, decision] as const
        if (ScheduleDecision.isDone(decision)) return Effect.succeed(result)
        const startsAt = ScheduleIntervals.start(decision.intervals)
        if (startsAt > until) return Effect.succeed([[next, retries], delay, ScheduleDecision.done] as const)
        const wait = Duration.millis(Math.max(0, startsAt - now))
        return Effect.as(onRetry(error, retries + 1, wait), result)
      })
  )

/** The engine's retry policy, fed with the errors; it outputs the delay before the next retry. */
export const policy = (options?: Options): Schedule.Schedule<Duration.Duration, LlmError> => {
  const resolved = resolve(options)
  return tapRetries(core(resolved), resolved.onRetry, resolved.until)
}

/** The backoff between two re-queues of a call the backend answered 503 busy. */
const requeueBackoff = backoff({ ...defaults, base: "25 millis", maxDelay: "1 second" })

/** Re-queues on 503 busy (see the module comment) until the instant `until` (Clock ms). */
export const requeue = (until: number): Schedule.Schedule<Duration.Duration, LlmError> =>
  tapRetries(
    Schedule.delays(Schedule.intersect(requeueBackoff, retryAfter)).pipe(
      Schedule.whileInput((error: LlmError) => error.backpressure)
    ),
    () => Recorders.recordRequeue,
    until
  )

/**
 * `Effect.retry(effect, schedule())`, with the schedule and its driver made only once the effect has failed: a
 * call that succeeds at once (nearly all of them) pays for none of the bookkeeping. The schedule sees the same
 * inputs at the same times (its first step is the first failure either way).
 */
export const retryLazily = <A, E, R, Out, R2>(
  effect: Effect.Effect<A, E, R>,
  schedule: () => Schedule.Schedule<Out, E, R2>
): Effect.Effect<A, E, R | R2> =>
  Effect.catchAll(effect, (first) =>
    Effect.flatMap(Schedule.driver(schedule()), (driver) => {
      const next = (error: E): Effect.Effect<A, E, R | R2> =>
        Effect.matchEffect(driver.next(error), {
          onFailure: () => Effect.fail(error),
          onSuccess: () => Effect.catchAll(effect, next)
        })
      return next(first)
    })
  )

/** Retries a unary call with `policy(options)` (made at its first failure, see `retryLazily`). */
export const retry =
  (options?: Options) =>
  <A, E extends LlmError, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    retryLazily(effect, () => policy(options))

/** Retries a stream with `policy(options)` while none of its chunks has reached the caller. */
export const retryStream =
  (options?: Options) =>
  <A, E extends LlmError, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
    Stream.unwrap(
      Effect.map(Ref.make(false), (emitted) => {
        const resolved = resolve(options)
        const beforeFirstChunk = core(resolved).pipe(
          Schedule.checkEffect(() => Effect.map(Ref.get(emitted), (done) => !done))
        )
        const marked = Stream.mapChunksEffect(stream, (chunk) =>
          chunk.length > 0 ? Effect.as(Ref.set(emitted, true), chunk) : Effect.succeed(chunk)
        )
        return Stream.retry(marked, tapRetries(beforeFirstChunk, resolved.onRetry, resolved.until))
      })
    )
