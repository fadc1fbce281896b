/**
 * A circuit breaker per backend (ARCHITECTURE.md §3) that tells a flaky backend from a dead one: a dead backend
 * fails fast with `CircuitOpen` instead of piling calls up on it; a flaky one keeps serving, because a breaker
 * that refuses what a direct call would have answered makes the backend look worse than it is.
 *
 * Choices (after resilience4j's sliding window and Envoy's outlier detection):
 * - States closed / open / half-open. Closed opens when `consecutiveFailures` backend failures come in a row (a
 *   dead backend: 20 by default, so 16 concurrent calls failing together at a 25 % fault rate never make a streak
 *   long enough; 0.27^20 ~ 4e-12), or when the failure ratio of the rolling `window` reaches `failureRatio` over at
 *   least `minimumVolume` calls (100 by default, resilience4j's minimum: a flaky backend's early streaks do not
 *   count; at a 27 % fault rate the chance that 100 calls reach 50 % is ~1e-7). The window is 10 buckets over
 *   `Clock` time; the ratio is checked on failures only, so a success never opens the breaker.
 * - Dead or degraded: the breaker is *dead* while its failures in a row (across probes) reach
 *   `consecutiveFailures`; a breaker opened by the ratio rule is *degraded*. Both are skipped in the choice of a
 *   backend while another admits the call. When no backend admits a call (`awaitTurn`), it waits within its
 *   deadline for the next half-open probe's outcome instead of failing at once (Envoy's panic threshold: ejection
 *   never simply refuses all traffic), except that an open dead breaker fails it at once: a dead backend fails fast.
 * - The open period is `openFor x backoffFactor^(trips in a row - 1)`, capped at `maxOpenFor`; a close resets it.
 * - Open turns into half-open lazily, on the next call, `state` or `isCallPermitted` after the period (no fiber).
 *   Half-open admits `halfOpenProbes` concurrent probes, the others are refused; the first probe that succeeds
 *   closes the breaker, the first that fails opens it again for a longer period.
 * - What counts (`outcomeOf`, reading the error's properties, Domain/LlmError.ts): a `backendFailure` (transport,
 *   timeouts, 5xx, broken streams) is a failure; a success, or an answer the backend gave (a 4xx, an undecodable
 *   body), is a success; 503 busy is `backpressure` (the scheduler lowers the backend's limit and re-queues the
 *   call), not ill health, so it counts as nothing, like interruption, defects, failures outside the family and the
 *   engine's own `local` refusals (open breaker, rate limit, queue, budget, shutdown).
 * - Every call carries the epoch of the state it was admitted in (each transition starts a new epoch): a call that
 *   ends after a transition is ignored, except that a probe always gives its slot back.
 * - A rejection's `retryAfterMs` is the time left while open, and the base `openFor` while half-open with all
 *   probe slots taken (the probes' outcome is unknown).
 * - The state is one plain value changed by pure functions inside `Effect.sync` (fibers run on one thread, so a
 *   step is atomic), which lets `awaitTurn` check the epoch and register its wake-up in one synchronous step;
 *   transitions wake those waiters and are logged (warning when opening, info when half-opening and closing),
 *   annotated with the backend name.
 * - The `CircuitBreaker` service is a registry (Llm/Keyed.ts): one breaker per name, made on first use with that
 *   use's options; an idle breaker at rest is dropped, one that is open or counting failures is kept. The engine
 *   does not use it: Backends.ts makes one breaker per configured backend with `make`, for the engine's life.
 */
import { Cause, Clock, Duration, Effect, Exit, Option, Stream } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import { CircuitOpen, isLlmError } from "../Domain/LlmError.js"
import * as Keyed from "./Keyed.js"

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
  /**
   * For a call that no backend admits: resolves once this breaker may admit it ("changed": its open period passed
   * or a probe ended), at once with "dead" when it is open and dead (the call should fail fast), or with "expired"
   * when `until` (Clock ms) comes first.
   */
  readonly awaitTurn: (until: number) => Effect.Effect<Turn>
  readonly stats: Effect.Effect<Stats>
}

export type Turn = "changed" | "dead" | "expired"

/** The defaults of the trip rules, in one place (the periods' defaults are on `Options`). */
export const defaults = { consecutiveFailures: 20, failureRatio: 0.5, minimumVolume: 100 } as const

const settingsOf = (options: Options = {}) => {
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

type Settings = ReturnType<typeof settingsOf>

type Bucket = { readonly start: number; readonly calls: number; readonly failures: number }

/** The whole state of a breaker; `epoch` grows with each transition. */
interface Machine extends Omit<Stats, "openUntilMs" | "dead"> {
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

/** What a call's exit says about the backend's health (see the module comment). */
const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "success"
  const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
  if (!isLlmError(failure) || failure.local || failure.backpressure) return "neutral"
  return failure.backendFailure ? "failure" : "success"
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

const isDead = (m: Machine, s: Settings): boolean => m.consecutiveFailures >= s.consecutiveFailures

const statsOf = (m: Machine, s: Settings): Stats => ({
  state: m.state,
  trips: m.trips,
  rejections: m.rejections,
  transitions: m.transitions,
  consecutiveFailures: m.consecutiveFailures,
  dead: isDead(m, s),
  ...(m.state === "open" ? { openUntilMs: m.openUntil } : {})
})

const permits = (m: Machine, s: Settings): boolean =>
  m.state === "closed" || (m.state === "half-open" && m.probes < s.halfOpenProbes)

/**
 * The state of one breaker: a plain value changed by pure steps inside `Effect.sync` (atomic, see the module
 * comment), and the wake-ups of the calls waiting for a transition.
 */
class Cell {
  machine: Machine = initial
  readonly waiting = new Set<() => void>()

  constructor(readonly name: string) {}

  /** Applies a pure step at the Clock's time, wakes the waiters on a transition, then logs it. */
  step<A>(f: (m: Machine, now: number) => Step<A>): Effect.Effect<A> {
    // the body of clockWith runs in one synchronous step, so no other fiber interleaves
    return Effect.clockWith((clock) => {
      const [a, next, change] = f(this.machine, clock.unsafeCurrentTimeMillis())
      this.machine = next
      if (change === undefined) return Effect.succeed(a)
      this.wakeAll()
      return Effect.as(logChange(this.name, change), a)
    })
  }

  private wakeAll(): void {
    const woken = Array.from(this.waiting)
    this.waiting.clear()
    for (const wake of woken) wake()
  }

  /** Resumes at the first transition after `epoch` (at once if one already happened). */
  transitionAfter(epoch: number): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.machine.epoch !== epoch) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      this.waiting.add(wake)
      return Effect.sync(() => this.waiting.delete(wake))
    })
  }
}

/** See `Breaker.awaitTurn`. */
const awaitTurn = (cell: Cell, s: Settings, until: number): Effect.Effect<Turn> =>
  Effect.flatMap(
    Effect.zipRight(
      cell.step((m, now) => advance(m, now)),
      Clock.currentTimeMillis
    ),
    (now): Effect.Effect<Turn> => {
      const m = cell.machine
      if (permits(m, s)) return Effect.succeed("changed")
      if (m.state === "open" && isDead(m, s)) return Effect.succeed("dead")
      if (now >= until) return Effect.succeed("expired")
      // open and degraded: until the period passes; half-open with its probes out: until a probe ends
      const wakeAt = m.state === "open" ? Math.min(m.openUntil, until) : until
      return Effect.raceFirst(
        Effect.as(cell.transitionAfter(m.epoch), "changed" as const),
        Effect.as(Effect.sleep(Duration.millis(Math.max(0, wakeAt - now))), wakeAt >= until ? "expired" : "changed")
      )
    }
  )

/** Makes the breaker of one backend. */
export const make = (name: string, options?: Options): Effect.Effect<Breaker> =>
  Effect.sync(() => {
    const s = settingsOf(options)
    const cell = new Cell(name)
    const acquire = Effect.flatMap(
      cell.step((m, now) => admit(m, now, s)),
      (permit): Effect.Effect<Permit, CircuitOpen> =>
        typeof permit === "number"
          ? Effect.fail(new CircuitOpen({ backend: name, retryAfterMs: permit }))
          : Effect.succeed(permit)
    )
    const release = (permit: Permit, exit: Exit.Exit<unknown, unknown>) =>
      cell.step((m, now) => settle(m, permit, outcomeOf(exit), now, s))
    const current = Effect.map(cell.step(advance), () => cell.machine)
    return {
      name,
      protect: (effect) => Effect.acquireUseRelease(acquire, () => effect, release),
      protectStream: (stream) => Stream.unwrapScoped(Effect.as(Effect.acquireRelease(acquire, release), stream)),
      state: Effect.map(current, (m) => m.state),
      isCallPermitted: Effect.map(current, (m) => permits(m, s)),
      awaitTurn: (until) => awaitTurn(cell, s, until),
      stats: Effect.map(current, (m) => statsOf(m, s))
    } satisfies Breaker
  })

/** The registry's bounds: idle breakers at rest go after `idleTimeToLive`; `capacity` names at most. */
export const registryDefaults = { idleTimeToLive: "10 minutes", capacity: 1_000 } as const

/** A breaker worth keeping while idle: not closed, or failures in a row on the books. */
const holdsState = (breaker: Breaker): Effect.Effect<boolean> =>
  Effect.map(breaker.stats, (s) => s.state !== "closed" || s.consecutiveFailures > 0)

/**
 * The breakers of all backends, one per name, made on first use (later options for a known name are ignored). A
 * breaker idle for `registryDefaults.idleTimeToLive` while closed with no failures in a row is dropped: it holds
 * nothing a new one would not, its window (10 s by default) being far shorter. Others are kept. Look a breaker up
 * per use: one kept past its idle time and then looked up again has a newer twin.
 */
export class CircuitBreaker extends Effect.Service<CircuitBreaker>()("sluice/CircuitBreaker", {
  scoped: Effect.gen(function* () {
    const registry = yield* Keyed.make({
      name: "circuit breaker",
      acquire: (name: string, options: Options | undefined) => make(name, options),
      ...registryDefaults,
      keep: holdsState
    })
    const breaker = Effect.fn("CircuitBreaker.breaker")(function* (name: string, options?: Options) {
      return yield* registry.lookup(name, options)
    })
    const all: Effect.Effect<ReadonlyArray<Breaker>> = Effect.map(registry.entries, (entries) =>
      entries.map(([, b]) => b)
    )
    return { breaker, all } as const
  })
}) {}
