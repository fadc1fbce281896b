/**
 * The state machine of one circuit breaker (CircuitBreaker.ts has the rules in its module comment): a plain value
 * and the pure steps that change it, each returning the next value and the transition to log (and to share with
 * the other instances, when it is news for them: BreakerGossip).
 *
 * Gossip (scale-out with Redis, docs/scale-out.md):
 * - Only a dead backend is news: a trip (or a failed probe) with `consecutiveFailures` failures in a row is shared
 *   as "open"; a ratio trip (a flaky, degraded backend) is not, so gossip never makes a flaky backend look dead.
 *   A close is shared when it ends a dead or learned open.
 * - `learnOpen`: another instance found the backend dead: open for the period it chose, marked dead (calls no
 *   other backend admits fail fast, as on that instance) and `learned`. An open breaker is marked dead; a learned
 *   open extends its period, one of this instance's own evidence keeps its own.
 * - `learnClose`: another instance's probe succeeded: a learned open closes; an open of this instance's own
 *   evidence turns half-open (its own probe decides: the backend may answer others and not this instance).
 * - Neither learned step is shared again, so news does not echo.
 */
import { Cause, Duration, Exit, Option } from "effect"
import { isLlmError } from "../Domain/LlmError.js"

/** The knobs of one breaker; each absent field has the default documented on it. */
export interface Options {
  /** Backend failures in a row that open the breaker and mark it dead (fail fast). Default 20. */
  readonly consecutiveFailures?: number
  /** Share of failed calls in the window that opens the breaker. Default 0.5. */
  readonly failureRatio?: number
  /** Calls the window must hold before the ratio counts. Default 100. */
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
  /** Whether its failures in a row reached `consecutiveFailures`: while open, calls no backend admits fail fast. */
  readonly dead: boolean
  /** While open: when it turns half-open (Clock ms). */
  readonly openUntilMs?: number
}

/** The defaults of the trip rules, in one place (the periods' defaults are on `Options`). */
export const defaults = { consecutiveFailures: 20, failureRatio: 0.5, minimumVolume: 100 } as const

export const settingsOf = (options: Options = {}) => {
  const windowMs = Math.max(1, Duration.toMillis(options.window ?? "10 seconds"))
  return {
    consecutiveFailures: Math.max(1, options.consecutiveFailures ?? defaults.consecutiveFailures),
    failureRatio: options.failureRatio ?? defaults.failureRatio,
    minimumVolume: Math.max(1, options.minimumVolume ?? defaults.minimumVolume),
    windowMs,
    bucketMs: windowMs / 10,
    openForMs: Duration.toMillis(options.openFor ?? "5 seconds"),
    maxOpenForMs: Duration.toMillis(options.maxOpenFor ?? "2 minutes"),
    backoffFactor: options.backoffFactor ?? 2,
    halfOpenProbes: Math.max(1, options.halfOpenProbes ?? 1)
  }
}

export type Settings = ReturnType<typeof settingsOf>

export type Bucket = { readonly start: number; readonly calls: number; readonly failures: number }

/** The whole state of a breaker; `epoch` grows with each transition. */
export interface Machine extends Omit<Stats, "openUntilMs" | "dead"> {
  readonly epoch: number
  readonly openUntil: number
  readonly probes: number
  readonly tripsInARow: number
  readonly buckets: ReadonlyArray<Bucket>
  /** The current open came from another instance (`learnOpen`), not from this one's calls. */
  readonly learned: boolean
}

export const initial: Machine = {
  state: "closed",
  epoch: 0,
  openUntil: 0,
  probes: 0,
  consecutiveFailures: 0,
  tripsInARow: 0,
  buckets: [],
  trips: 0,
  rejections: 0,
  transitions: 0,
  learned: false
}

export type Outcome = "success" | "failure" | "neutral"

/** A transition to log; `share`: news for the other instances (see the module comment). */
export type Change = {
  readonly to: State
  readonly reason: string
  readonly openForMs?: number
  readonly share?: boolean
}

export type Step<A> = readonly [A, Machine, Change | undefined]

export interface Permit {
  readonly epoch: number
  readonly probe: boolean
}

export const enter = (m: Machine, state: State): Machine => ({
  ...m,
  state,
  epoch: m.epoch + 1,
  probes: 0,
  buckets: [],
  transitions: m.transitions + 1
})

export const trip = (m: Machine, now: number, s: Settings, reason: string): Step<void> => {
  const openForMs = Math.min(s.openForMs * s.backoffFactor ** m.tripsInARow, s.maxOpenForMs)
  const next = {
    ...enter(m, "open"),
    openUntil: now + openForMs,
    tripsInARow: m.tripsInARow + 1,
    trips: m.trips + 1,
    learned: false
  }
  return [undefined, next, { to: "open", reason, openForMs, share: isDead(next, s) }]
}

export const close = (m: Machine, s: Settings, reason = "probe succeeded"): Step<void> => [
  undefined,
  { ...enter(m, "closed"), consecutiveFailures: 0, tripsInARow: 0, learned: false },
  { to: "closed", reason, share: isDead(m, s) || m.learned }
]

/** Another instance found the backend dead and opened its breaker for `openForMs` (see the module comment). */
export const learnOpen = (m: Machine, now: number, openForMs: number, s: Settings): Step<void> => {
  const openUntil = now + Math.max(0, openForMs)
  const consecutiveFailures = Math.max(m.consecutiveFailures, s.consecutiveFailures)
  if (m.state === "open") {
    const until = m.learned ? Math.max(m.openUntil, openUntil) : m.openUntil
    return [undefined, { ...m, openUntil: until, consecutiveFailures }, undefined]
  }
  const next = {
    ...enter(m, "open"),
    openUntil,
    consecutiveFailures,
    trips: m.trips + 1,
    learned: true
  }
  return [undefined, next, { to: "open", reason: "another instance found the backend dead", openForMs }]
}

/** Another instance's probe succeeded (see the module comment). */
export const learnClose = (m: Machine): Step<void> => {
  const reason = "another instance's probe succeeded"
  if (m.state === "closed") return [undefined, m, undefined]
  if (m.learned)
    return [
      undefined,
      { ...enter(m, "closed"), consecutiveFailures: 0, tripsInARow: 0, learned: false },
      { to: "closed", reason }
    ]
  if (m.state === "open") return [undefined, enter(m, "half-open"), { to: "half-open", reason }]
  return [undefined, m, undefined]
}

/** Open turns into half-open once its period has passed. */
export const advance = (m: Machine, now: number): Step<void> =>
  m.state === "open" && now >= m.openUntil
    ? [undefined, enter(m, "half-open"), { to: "half-open", reason: "open period passed" }]
    : [undefined, m, undefined]

export const admit = (m0: Machine, now: number, s: Settings): Step<Permit | number> => {
  const [, m, change] = advance(m0, now)
  if (m.state === "closed") return [{ epoch: m.epoch, probe: false }, m, change]
  if (m.state === "half-open" && m.probes < s.halfOpenProbes) {
    return [{ epoch: m.epoch, probe: true }, { ...m, probes: m.probes + 1 }, change]
  }
  const retryAfterMs = m.state === "open" ? m.openUntil - now : s.openForMs
  return [retryAfterMs, { ...m, rejections: m.rejections + 1 }, change]
}

export const record = (
  buckets: ReadonlyArray<Bucket>,
  now: number,
  failed: boolean,
  s: Settings
): ReadonlyArray<Bucket> => {
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

export const ratioReached = (buckets: ReadonlyArray<Bucket>, s: Settings): boolean => {
  const calls = buckets.reduce((sum, bucket) => sum + bucket.calls, 0)
  const failures = buckets.reduce((sum, bucket) => sum + bucket.failures, 0)
  return calls >= s.minimumVolume && failures / calls >= s.failureRatio
}

export const settleClosed = (m: Machine, outcome: Outcome, now: number, s: Settings): Step<void> => {
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

export const settle = (m: Machine, permit: Permit, outcome: Outcome, now: number, s: Settings): Step<void> => {
  if (permit.epoch !== m.epoch) return [undefined, m, undefined]
  if (!permit.probe) return settleClosed(m, outcome, now, s)
  const released = { ...m, probes: m.probes - 1 }
  if (outcome === "success") return close(released, s)
  if (outcome === "failure") {
    return trip({ ...released, consecutiveFailures: released.consecutiveFailures + 1 }, now, s, "probe failed")
  }
  return [undefined, released, undefined]
}

/** What a call's exit says about the backend's health (see the module comment). */
export const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "success"
  const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
  if (!isLlmError(failure) || failure.local || failure.backpressure) return "neutral"
  return failure.backendFailure ? "failure" : "success"
}

export const isDead = (m: Machine, s: Settings): boolean => m.consecutiveFailures >= s.consecutiveFailures

export const statsOf = (m: Machine, s: Settings): Stats => ({
  state: m.state,
  trips: m.trips,
  rejections: m.rejections,
  transitions: m.transitions,
  consecutiveFailures: m.consecutiveFailures,
  dead: isDead(m, s),
  ...(m.state === "open" ? { openUntilMs: m.openUntil } : {})
})

export const permits = (m: Machine, s: Settings): boolean =>
  m.state === "closed" || (m.state === "half-open" && m.probes < s.halfOpenProbes)
