/**
 * A circuit breaker per backend (ARCHITECTURE.md §3): while a backend is unwell, calls to it fail fast with
 * `CircuitOpen` (which the engine retries on another backend) instead of piling up on it.
 *
 * Choices:
 * - States closed / open / half-open. Closed opens on `consecutiveFailures` backend failures in a row, or when a
 *   failure makes the failure ratio of the rolling `window` reach `failureRatio` over at least `minimumVolume` calls.
 *   The window is 10 buckets over `Clock` time (so it is exact to a tenth of the window); the ratio is checked on
 *   failures only, so a success never opens the breaker.
 * - The open period is `openFor × backoffFactor^(trips in a row - 1)`, capped at `maxOpenFor`; a close resets it.
 * - Open turns into half-open lazily, on the next call, `state` or `isCallPermitted` after the period (no fiber).
 *   Half-open admits `halfOpenProbes` concurrent probes, the others fail fast; the first probe that succeeds
 *   closes the breaker, the first that fails opens it again for a longer period.
 * - What counts (`outcomeOf`): a backend failure (`isBackendFailure`: transport, timeouts, 5xx, 503 busy, broken
 *   streams) is a failure; a success, or an answer the backend gave (a 4xx, an undecodable body), is a success;
 *   interruption, defects and the engine's own refusals (rate limit, queue, budget, shutdown) count as nothing.
 * - Every call carries the epoch of the state it was admitted in (each transition starts a new epoch): a call that
 *   ends after a transition is ignored, except that a probe always gives its slot back.
 * - A rejection's `retryAfterMs` is the time left while open, and the base `openFor` while half-open with all
 *   probe slots taken (the probes' outcome is unknown).
 * - The state is one `Ref` changed by pure functions; transitions are logged afterwards (warning when opening,
 *   info when half-opening and closing), annotated with the backend name.
 * - The `CircuitBreaker` service is a registry: one breaker per name, made on first use with that use's options.
 */
import { Cause, Clock, Duration, Effect, Exit, Option, Ref, Stream, SynchronizedRef } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import { CircuitOpen, isBackendFailure } from "../Domain/LlmError.js"

/** The knobs of one breaker; each absent field has the default documented on it. */
export interface Options {
  /** Backend failures in a row that open the breaker. Default 5. */
  readonly consecutiveFailures?: number
  /** Share of failed calls in the window that opens the breaker. Default 0.5. */
  readonly failureRatio?: number
  /** Calls the window must hold before the ratio counts. Default 20. */
  readonly minimumVolume?: number
  /** The rolling window of the ratio rule. Default 10 s. */
  readonly window?: Duration.DurationInput
  /** The first open period. Default 5 s. */
  readonly openFor?: Duration.DurationInput
  /** The longest open period. Default 2 min. */
  readonly maxOpenFor?: Duration.DurationInput
  /** Growth of the open period per trip in a row. Default 2. */
  readonly backoffFactor?: number
  /** Concurrent probes admitted while half-open. Default 1. */
  readonly halfOpenProbes?: number
}

export type State = "closed" | "open" | "half-open"

/** What a breaker reports for health checks and metrics. */
export interface Stats {
  readonly state: State
  /** Times the breaker opened. */
  readonly trips: number
  /** Calls failed fast with `CircuitOpen`. */
  readonly rejections: number
  /** State changes. */
  readonly transitions: number
  readonly consecutiveFailures: number
  /** While open: when it turns half-open (Clock ms). */
  readonly openUntilMs?: number
}

export interface Breaker {
  readonly name: string
  /** Runs the effect if the breaker admits it, else fails with `CircuitOpen` without running it. */
  readonly protect: <A, E extends LlmError, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  /** Like `protect` for a stream: success is its completion, failure a backend failure it fails with. */
  readonly protectStream: <A, E extends LlmError, R>(
    stream: Stream.Stream<A, E, R>
  ) => Stream.Stream<A, E | CircuitOpen, R>
  /** The current state (open turns into half-open once its period has passed). */
  readonly state: Effect.Effect<State>
  /** Whether a call would be admitted now; false while open. For the choice of a backend. */
  readonly isCallPermitted: Effect.Effect<boolean>
  readonly stats: Effect.Effect<Stats>
}

const settingsOf = (options: Options = {}) => {
  const windowMs = Math.max(1, Duration.toMillis(options.window ?? "10 seconds"))
  return {
    consecutiveFailures: Math.max(1, options.consecutiveFailures ?? 5),
    failureRatio: options.failureRatio ?? 0.5,
    minimumVolume: Math.max(1, options.minimumVolume ?? 20),
    windowMs,
    bucketMs: windowMs / 10,
    openForMs: Duration.toMillis(options.openFor ?? "5 seconds"),
    maxOpenForMs: Duration.toMillis(options.maxOpenFor ?? "2 minutes"),
    backoffFactor: options.backoffFactor ?? 2,
    halfOpenProbes: Math.max(1, options.halfOpenProbes ?? 1)
  }
}

type Settings = ReturnType<typeof settingsOf>

type Bucket = { readonly start: number; readonly calls: number; readonly failures: number }

/** The whole state of a breaker; `epoch` grows with each transition. */
interface Machine extends Omit<Stats, "openUntilMs"> {
  readonly epoch: number
  readonly openUntil: number
  readonly probes: number
  readonly tripsInARow: number
  readonly buckets: ReadonlyArray<Bucket>
}

const initial: Machine = {
  state: "closed",
  epoch: 0,
  openUntil: 0,
  probes: 0,
  consecutiveFailures: 0,
  tripsInARow: 0,
  buckets: [],
  trips: 0,
  rejections: 0,
  transitions: 0
}

type Outcome = "success" | "failure" | "neutral"

/** A transition to log. */
type Change = { readonly to: State; readonly reason: string; readonly openForMs?: number }

type Step<A> = readonly [A, Machine, Change | undefined]

interface Permit {
  readonly epoch: number
  readonly probe: boolean
}

const enter = (m: Machine, state: State): Machine => ({
  ...m,
  state,
  epoch: m.epoch + 1,
  probes: 0,
  buckets: [],
  transitions: m.transitions + 1
})

const trip = (m: Machine, now: number, s: Settings, reason: string): Step<void> => {
  const openForMs = Math.min(s.openForMs * s.backoffFactor ** m.tripsInARow, s.maxOpenForMs)
  const next = { ...enter(m, "open"), openUntil: now + openForMs, tripsInARow: m.tripsInARow + 1, trips: m.trips + 1 }
  return [undefined, next, { to: "open", reason, openForMs }]
}

const close = (m: Machine): Step<void> => [
  undefined,
  { ...enter(m, "closed"), consecutiveFailures: 0, tripsInARow: 0 },
  { to: "closed", reason: "probe succeeded" }
]

/** Open turns into half-open once its period has passed. */
const advance = (m: Machine, now: number): Step<void> =>
  m.state === "open" && now >= m.openUntil
    ? [undefined, enter(m, "half-open"), { to: "half-open", reason: "open period passed" }]
    : [undefined, m, undefined]

const admit = (m0: Machine, now: number, s: Settings): Step<Permit | number> => {
  const [, m, change] = advance(m0, now)
  if (m.state === "closed") return [{ epoch: m.epoch, probe: false }, m, change]
  if (m.state === "half-open" && m.probes < s.halfOpenProbes) {
    return [{ epoch: m.epoch, probe: true }, { ...m, probes: m.probes + 1 }, change]
  }
  const retryAfterMs = m.state === "open" ? m.openUntil - now : s.openForMs
  return [retryAfterMs, { ...m, rejections: m.rejections + 1 }, change]
}

const record = (buckets: ReadonlyArray<Bucket>, now: number, failed: boolean, s: Settings): ReadonlyArray<Bucket> => {
  const start = Math.floor(now / s.bucketMs) * s.bucketMs
  const live = buckets.filter((bucket) => bucket.start + s.bucketMs > now - s.windowMs)
  const last = live[live.length - 1]
  const add = (bucket: Bucket): Bucket => ({
    ...bucket,
    calls: bucket.calls + 1,
    failures: bucket.failures + (failed ? 1 : 0)
  })
  return last?.start === start ? [...live.slice(0, -1), add(last)] : [...live, add({ start, calls: 0, failures: 0 })]
}

const ratioReached = (buckets: ReadonlyArray<Bucket>, s: Settings): boolean => {
  const calls = buckets.reduce((sum, bucket) => sum + bucket.calls, 0)
  const failures = buckets.reduce((sum, bucket) => sum + bucket.failures, 0)
  return calls >= s.minimumVolume && failures / calls >= s.failureRatio
}

const settleClosed = (m: Machine, outcome: Outcome, now: number, s: Settings): Step<void> => {
  if (outcome === "neutral") return [undefined, m, undefined]
  const failed = outcome === "failure"
  const next = {
    ...m,
    buckets: record(m.buckets, now, failed, s),
    consecutiveFailures: failed ? m.consecutiveFailures + 1 : 0
  }
  if (failed && next.consecutiveFailures >= s.consecutiveFailures) return trip(next, now, s, "consecutive failures")
  if (failed && ratioReached(next.buckets, s)) return trip(next, now, s, "failure ratio")
  return [undefined, next, undefined]
}

const settle = (m: Machine, permit: Permit, outcome: Outcome, now: number, s: Settings): Step<void> => {
  if (permit.epoch !== m.epoch) return [undefined, m, undefined]
  if (!permit.probe) return settleClosed(m, outcome, now, s)
  const released = { ...m, probes: m.probes - 1 }
  if (outcome === "success") return close(released)
  if (outcome === "failure") {
    return trip({ ...released, consecutiveFailures: released.consecutiveFailures + 1 }, now, s, "probe failed")
  }
  return [undefined, released, undefined]
}

/** Engine errors raised before the backend was reached: they say nothing about its health. */
const localTags = new Set(["CircuitOpen", "RateLimited", "QueueFull", "BudgetExceeded", "ShuttingDown"])

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "success"
  const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
  if (typeof failure !== "object" || failure === null || !("_tag" in failure) || typeof failure._tag !== "string") {
    return "neutral"
  }
  if (localTags.has(failure._tag)) return "neutral"
  return isBackendFailure(failure as LlmError) ? "failure" : "success"
}

const logChange = (name: string, change: Change | undefined): Effect.Effect<void> => {
  if (change === undefined) return Effect.void
  const log =
    change.to === "open"
      ? Effect.logWarning(`circuit breaker of ${name} opened`)
      : Effect.logInfo(`circuit breaker of ${name} ${change.to === "closed" ? "closed" : "half-open"}`)
  const annotations = { backend: name, state: change.to, reason: change.reason }
  return Effect.annotateLogs(
    log,
    change.openForMs === undefined ? annotations : { ...annotations, openForMs: change.openForMs }
  )
}

const statsOf = (m: Machine): Stats => ({
  state: m.state,
  trips: m.trips,
  rejections: m.rejections,
  transitions: m.transitions,
  consecutiveFailures: m.consecutiveFailures,
  ...(m.state === "open" ? { openUntilMs: m.openUntil } : {})
})

const permits = (m: Machine, s: Settings): boolean =>
  m.state === "closed" || (m.state === "half-open" && m.probes < s.halfOpenProbes)

/** Applies a pure step to the state at the Clock's time, then logs the transition it made, if any. */
const stepper =
  (ref: Ref.Ref<Machine>, name: string) =>
  <A>(f: (m: Machine, now: number) => Step<A>): Effect.Effect<A> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(
        Ref.modify(ref, (m) => {
          const [a, next, change] = f(m, now)
          return [[a, change] as const, next]
        }),
        ([a, change]) => Effect.as(logChange(name, change), a)
      )
    )

/** Makes the breaker of one backend. */
export const make = (name: string, options?: Options): Effect.Effect<Breaker> =>
  Effect.map(Ref.make(initial), (ref) => {
    const s = settingsOf(options)
    const step = stepper(ref, name)
    const acquire = Effect.flatMap(
      step((m, now) => admit(m, now, s)),
      (permit): Effect.Effect<Permit, CircuitOpen> =>
        typeof permit === "number"
          ? Effect.fail(new CircuitOpen({ backend: name, retryAfterMs: permit }))
          : Effect.succeed(permit)
    )
    const release = (permit: Permit, exit: Exit.Exit<unknown, unknown>) =>
      step((m, now) => settle(m, permit, outcomeOf(exit), now, s))
    const current = Effect.zipRight(step(advance), Ref.get(ref))
    return {
      name,
      protect: (effect) => Effect.acquireUseRelease(acquire, () => effect, release),
      protectStream: (stream) => Stream.unwrapScoped(Effect.as(Effect.acquireRelease(acquire, release), stream)),
      state: Effect.map(current, (m) => m.state),
      isCallPermitted: Effect.map(current, (m) => permits(m, s)),
      stats: Effect.map(current, statsOf)
    } satisfies Breaker
  })

/** The breakers of all backends, one per name, made on first use (later options for a known name are ignored). */
export class CircuitBreaker extends Effect.Service<CircuitBreaker>()("sluice/CircuitBreaker", {
  effect: Effect.gen(function* () {
    const registry = yield* SynchronizedRef.make(new Map<string, Breaker>())
    const breaker = Effect.fn("CircuitBreaker.breaker")(function* (name: string, options?: Options) {
      return yield* SynchronizedRef.modifyEffect(registry, (breakers) => {
        const known = breakers.get(name)
        if (known !== undefined) return Effect.succeed([known, breakers] as const)
        return Effect.map(make(name, options), (made) => [made, new Map(breakers).set(name, made)] as const)
      })
    })
    const all: Effect.Effect<ReadonlyArray<Breaker>> = Effect.map(SynchronizedRef.get(registry), (breakers) =>
      Array.from(breakers.values())
    )
    return { breaker, all } as const
  })
}) {}
