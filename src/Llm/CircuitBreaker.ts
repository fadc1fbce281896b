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
 * - With a shared Redis (`Redis`, a scale-out deployment), breakers of the same backend on other instances share
 *   what they learn: a dead backend's open and the close after it, never a flaky backend's (the steps are in
 *   CircuitBreakerMachine.ts, the transport in Shared/BreakerGossip.ts). Redis away: each works on its own.
 */
import { Clock, Duration, Effect, Exit, Option, Runtime, Stream } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import { CircuitOpen } from "../Domain/LlmError.js"
import * as BreakerGossip from "../Shared/BreakerGossip.js"
import { Redis } from "../Shared/Redis.js"
import * as Keyed from "./Keyed.js"
import {
  admit,
  advance,
  type Change,
  initial,
  isDead,
  learnClose,
  learnOpen,
  type Machine,
  type Options,
  outcomeOf,
  type Permit,
  permits,
  type Settings,
  settingsOf,
  settle,
  type State,
  type Stats,
  statsOf,
  type Step
} from "./CircuitBreakerMachine.js"

export { defaults } from "./CircuitBreakerMachine.js"
export type { Options, State, Stats } from "./CircuitBreakerMachine.js"

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
   * True while the breaker is closed, read without an Effect (a closed breaker admits every call, and only a call's
   * outcome, not time, changes that); false otherwise, when `isCallPermitted` decides (Backends.candidates).
   */
  readonly closedNow: () => boolean
  /**
   * For a call that no backend admits: resolves once this breaker may admit it ("changed": its open period passed
   * or a probe ended), at once with "dead" when it is open and dead (the call should fail fast), or with "expired"
   * when `until` (Clock ms) comes first.
   */
  readonly awaitTurn: (until: number) => Effect.Effect<Turn>
  readonly stats: Effect.Effect<Stats>
}

export type Turn = "changed" | "dead" | "expired"

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

/**
 * The state of one breaker: a plain value changed by pure steps inside `Effect.sync` (atomic, see the module
 * comment), and the wake-ups of the calls waiting for a transition.
 */
class Cell {
  machine: Machine = initial
  readonly waiting = new Set<() => void>()
  /** With a shared Redis: where news goes, and the listener the gossip holds weakly (kept alive here). */
  gossip: BreakerGossip.Gossip | undefined
  hear: BreakerGossip.Listener | undefined

  constructor(readonly name: string) {}

  /** Applies a pure step at the Clock's time, wakes the waiters on a transition, then logs it. */
  step<A>(f: (m: Machine, now: number) => Step<A>): Effect.Effect<A> {
    // the body of clockWith runs in one synchronous step, so no other fiber interleaves
    return Effect.clockWith((clock) => {
      const [a, announce] = this.apply(f, clock.unsafeCurrentTimeMillis())
      return announce === undefined ? Effect.succeed(a) : Effect.as(announce, a)
    })
  }

  /**
   * `step`'s synchronous part: applies `f` at `now` and wakes the waiters on a transition; returns the step's value
   * and, on a transition, the Effect that logs it (and shares it), for the caller to run next.
   */
  apply<A>(f: (m: Machine, now: number) => Step<A>, now: number): readonly [A, Effect.Effect<void> | undefined] {
    const [a, next, change] = f(this.machine, now)
    this.machine = next
    if (change === undefined) return [a, undefined]
    this.wakeAll()
    const logged = logChange(this.name, change)
    return [a, change.share && this.gossip !== undefined ? Effect.zipLeft(logged, this.share(change)) : logged]
  }

  /** Publishes a change in the background: the call that caused it does not wait for Redis (bounded anyway). */
  private share(change: Change): Effect.Effect<unknown> {
    const news = { backend: this.name, state: change.to === "open" ? "open" : "closed", openForMs: change.openForMs }
    return Effect.forkDaemon(this.gossip!.publish(news as BreakerGossip.News))
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
  Effect.suspend(() => {
    const s = settingsOf(options)
    const cell = new Cell(name)
    const refused = (permit: number) => new CircuitOpen({ backend: name, retryAfterMs: permit })
    const acquire = Effect.flatMap(
      cell.step((m, now) => admit(m, now, s)),
      (permit): Effect.Effect<Permit, CircuitOpen> =>
        typeof permit === "number" ? Effect.fail(refused(permit)) : Effect.succeed(permit)
    )
    const release = (permit: Permit, exit: Exit.Exit<unknown, unknown>) =>
      cell.step((m, now) => settle(m, permit, outcomeOf(exit), now, s))
    // `Effect.acquireUseRelease(acquire, () => effect, release)` in one region, the admission taken in the region's
    // first step: every unary attempt passes here, and the acquire and release effects of their own were ~6 of the
    // ~190 runtime steps of an engine call
    const protect = <A, E extends LlmError, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.clockWith((clock): Effect.Effect<A, E | CircuitOpen, R> => {
          const [permit, announce] = cell.apply((m, now) => admit(m, now, s), clock.unsafeCurrentTimeMillis())
          const run: Effect.Effect<A, E | CircuitOpen, R> =
            typeof permit === "number"
              ? Effect.fail(refused(permit))
              : Effect.matchCauseEffect(restore(effect), {
                  onFailure: (cause) =>
                    Effect.zipRight(release(permit, Exit.failCause(cause)), Effect.failCause(cause)),
                  onSuccess: (a) => Effect.as(release(permit, Exit.succeed(a)), a)
                })
          return announce === undefined ? run : Effect.zipRight(announce, run)
        })
      )
    const current = Effect.map(cell.step(advance), () => cell.machine)
    const breaker: Breaker = {
      name,
      protect,
      protectStream: (stream) => Stream.unwrapScoped(Effect.as(Effect.acquireRelease(acquire, release), stream)),
      state: Effect.map(current, (m) => m.state),
      isCallPermitted: Effect.map(current, (m) => permits(m, s)),
      closedNow: () => cell.machine.state === "closed",
      awaitTurn: (until) => awaitTurn(cell, s, until),
      stats: Effect.map(current, (m) => statsOf(m, s))
    }
    return Effect.as(joinGossip(cell, s), breaker)
  })

/**
 * With a shared Redis: the breaker hears the other instances' news of its backend (and what they knew before it
 * was made), and its own news is published (Cell.step). Without Redis, nothing.
 */
const joinGossip = (cell: Cell, s: Settings): Effect.Effect<void> =>
  Effect.flatMap(
    Redis,
    Option.match({
      onNone: () => Effect.void,
      onSome: (connection) =>
        Effect.gen(function* () {
          const gossip = yield* BreakerGossip.of(connection)
          const run = Runtime.runFork(yield* Effect.runtime<never>())
          const learn = (news: BreakerGossip.News) => (m: Machine, now: number) =>
            news.state === "open" ? learnOpen(m, now, news.openForMs ?? s.openForMs, s) : learnClose(m)
          cell.gossip = gossip
          cell.hear = (news) => run(cell.step(learn(news)))
          gossip.join(cell.name, cell.hear)
          const left = yield* gossip.recall(cell.name)
          if (Option.isSome(left)) yield* cell.step(learn({ backend: cell.name, state: "open", openForMs: left.value }))
        })
    })
  )

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
