/**
 * Hedged attempts ("The Tail at Scale", Dean & Barroso; gRPC's hedging policy): when an attempt has run much
 * longer than recent attempts of the same kind, a second one starts beside it (on another backend when there is
 * one) and the first to succeed wins; the other is interrupted, which aborts its request upstream. A stalled
 * backend request (no bytes for minutes) thus costs its caller about `multiplier` x the usual latency instead of
 * the attempt timeout, while a request that is merely slow keeps running and wins if it ends first.
 *
 * Choices:
 * - From when: an attempt marks the moment it holds its backend slot (`Mark`); time spent queueing in Sluice is not
 *   the backend's latency, so neither the delay nor the samples include it.
 * - What is measured: unary calls, the whole attempt; streams, the time to the first chunk (after it, a retry or
 *   a hedge would repeat what the caller has). Only successes count: the stalls are what is hedged against.
 * - When: after `multiplier` x the `quantile` of the last `samples` latencies of the same method and model (a
 *   chat of one model is not an embedding of another), and never before `floor`. With fewer than `minSamples`
 *   samples, after `coldAfter`. The decision is re-checked at most every second while the attempt runs, so an
 *   early attempt profits from samples that arrive during its wait.
 * - Up to 3 attempts race (gRPC's `maxAttempts`), each started once the previous one is overdue, so a hedge that
 *   stalls too is hedged in turn. The first attempt to end wins whether it succeeded or failed: a failure ends the
 *   overdue ones too (waiting for them would let a stalled request hold its caller for the whole attempt timeout)
 *   and the retry policy makes a fresh attempt with its backoff.
 * - How many: a token bucket per engine allows `budget` hedges per call on average (10 %), `burst` at most at
 *   once, so a backend that stalls everything gets at most that much extra load (gRPC's retry throttling).
 * - Why written here: Effect has races and Schedules but no hedging combinator or latency quantile; the tracker
 *   keeps a small ring per key and re-sorts it every 16 samples, which costs well under a microsecond per call.
 * - The tracker's keys are bounded (`maxKeys`): the oldest key is dropped first.
 */
import { Chunk, Clock, Duration, Effect, Exit, Fiber, Option, Scope, Stream } from "effect"
import * as Recorders from "../Observability/Recorders.js"
import * as HedgeInPlace from "./HedgeInPlace.js"
import * as Watch from "./Watch.js"

export interface Options {
  /** Hedge after this many times the quantile of recent latencies. Default 3. */
  readonly multiplier?: number
  /** The quantile. Default 0.95. */
  readonly quantile?: number
  /** Never hedge earlier than this. Default 1 second. */
  readonly floor?: Duration.DurationInput
  /** The hedge delay while a kind of call has fewer than `minSamples` samples. Default 30 seconds. */
  readonly coldAfter?: Duration.DurationInput
  /** Samples needed before the quantile is used. Default 10. */
  readonly minSamples?: number
  /** Hedges allowed per call, on average. Default 0.1; 0 turns hedging off. */
  readonly budget?: number
  /** Hedges allowed at once after a quiet period. Default 10. */
  readonly burst?: number
}

/** The defaults, in one place. */
export const defaults = {
  multiplier: 3,
  quantile: 0.95,
  floor: "1 second",
  coldAfter: "30 seconds",
  minSamples: 10,
  budget: 0.1,
  burst: 10
} as const

const samples = 128
const resortEvery = 16
const maxKeys = 256
const recheckMs = 1000
/** Attempts of one call at most, the first included (gRPC's hedging `maxAttempts`). */
const maxArms = 3

/** Recent latencies of one kind of call, with their quantile cached. */
class Ring {
  readonly values: Array<number> = []
  next = 0
  added = 0
  cached = Infinity

  add(ms: number, quantile: number, minSamples: number): void {
    if (this.values.length < samples) this.values.push(ms)
    else this.values[this.next] = ms
    this.next = (this.next + 1) % samples
    this.added++
    if (this.values.length >= minSamples && (this.added % resortEvery === 0 || this.cached === Infinity)) {
      const sorted = [...this.values].sort((a, b) => a - b)
      this.cached = sorted[Math.min(sorted.length - 1, Math.floor(quantile * sorted.length))]!
    }
  }
}

/**
 * Where an attempt notes when it started on its backend (Clock ms), set once it holds its slot, and how to give
 * that slot back early (Slots.Lease): an attempt found overdue releases it when its hedge starts, so a stalled
 * request does not hold up the calls queued behind it (nor its own hedge).
 */
export interface Mark {
  at: number | undefined
  release?: Effect.Effect<void> | undefined
}

/** Notes now in `mark` (run by an attempt once it holds its slot). */
export const start = (mark: Mark): Effect.Effect<void> => startThen(mark, () => Effect.void)

/** `start`, then the effect `next` makes, in the same step (every attempt of every call passes here). */
export const startThen = <A, E, R>(mark: Mark, next: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.clockWith((clock) => {
    mark.at = clock.unsafeCurrentTimeMillis()
    return next()
  })

export interface Hedger {
  /**
   * Runs `attempt`; once it has run on its backend longer than the hedge delay of `key` (and the budget allows),
   * starts another `attempt` beside it, and a third once that one is overdue too. The first to end wins, well or
   * badly, and the others are interrupted: an error is the result as usual (the retry policy goes on).
   */
  readonly run: <A, E, R>(
    key: string,
    attempt: (mark: Mark) => Effect.Effect<A, E, R>,
    cuttable?: boolean
  ) => Effect.Effect<A, E, R>
  /** The same for a stream: the race is for the first chunk; the winner's stream continues. */
  readonly stream: <A, E, R>(key: string, attempt: (mark: Mark) => Stream.Stream<A, E, R>) => Stream.Stream<A, E, R>
  /** Hedges started so far. */
  readonly hedges: Effect.Effect<number>
}

/** A stream opened up to its first chunk, in a Scope of its own that the caller closes. */
interface Opened<A, E, R> {
  readonly first: Chunk.Chunk<A>
  readonly pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<E>, R>
  readonly scope: Scope.CloseableScope
}

const open = <A, E, R>(stream: Stream.Stream<A, E, R>): Effect.Effect<Opened<A, E, R>, E, R> =>
  Effect.flatMap(Scope.make(), (scope) =>
    Effect.gen(function* () {
      const pull = yield* Scope.extend(Stream.toPull(stream), scope)
      const first = yield* Effect.catchAll(pull, (end) =>
        Option.match(end, { onNone: () => Effect.succeed(Chunk.empty<A>()), onSome: Effect.fail })
      )
      return { first, pull, scope }
    }).pipe(Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, exit))))
  )

/** Makes the hedger of one engine. */
export const make = (options: Options = {}): Effect.Effect<Hedger> =>
  Effect.sync(() => {
    const multiplier = options.multiplier ?? defaults.multiplier
    const quantile = options.quantile ?? defaults.quantile
    const floorMs = Duration.toMillis(options.floor ?? defaults.floor)
    const coldMs = Duration.toMillis(options.coldAfter ?? defaults.coldAfter)
    const minSamples = Math.max(1, options.minSamples ?? defaults.minSamples)
    const budget = Math.max(0, options.budget ?? defaults.budget)
    const burst = Math.max(1, options.burst ?? defaults.burst)
    const rings = new Map<string, Ring>()
    let tokens = burst
    let hedges = 0

    const ringOf = (key: string): Ring => {
      let ring = rings.get(key)
      if (ring === undefined) {
        if (rings.size >= maxKeys) rings.delete(rings.keys().next().value!)
        ring = new Ring()
        rings.set(key, ring)
      }
      return ring
    }
    const delayOf = (key: string): number => {
      const ring = rings.get(key)
      const learned = ring === undefined || ring.values.length < minSamples ? coldMs : multiplier * ring.cached
      return Math.max(floorMs, learned)
    }

    /**
     * At a check of the attempt marked `mark` (at `now`, Clock ms): the wait until the next check while it is not
     * overdue (at most a second), none once the budget is spent, else the hedge's start: its slot given back, and
     * counted.
     */
    const overdue = (key: string, mark: Mark, now: number): number | Effect.Effect<void> => {
      const left = mark.at === undefined ? recheckMs : mark.at + delayOf(key) - now
      if (left > 0) return Math.min(left, recheckMs)
      if (tokens < 1) return Infinity
      tokens -= 1
      hedges++
      return mark.release === undefined ? Recorders.recordHedge : Effect.zipRight(mark.release, Recorders.recordHedge)
    }

    /** A check of Watch.ts: `overdue`, then the next attempt raced with this one. */
    const due =
      <A, E, R>(
        clock: Clock.Clock,
        key: string,
        mark: Mark,
        hedge: (fiber: Fiber.RuntimeFiber<A, E>) => Effect.Effect<A, E, R>
      ): Watch.Check<A, E, R> =>
      (fiber) => {
        const next = overdue(key, mark, clock.unsafeCurrentTimeMillis())
        return typeof next === "number" ? next : Effect.zipRight(next, hedge(fiber))
      }

    /** One attempt, its latency on the backend recorded when it succeeds. */
    const timed = <A, E, R>(key: string, attempt: (mark: Mark) => Effect.Effect<A, E, R>, mark: Mark) =>
      // the sample taken in the step after the attempt (every call's attempt passes here)
      Effect.flatMap(attempt(mark), (answer) =>
        Effect.clockWith((clock) => {
          if (mark.at !== undefined) ringOf(key).add(clock.unsafeCurrentTimeMillis() - mark.at, quantile, minSamples)
          return Effect.succeed(answer)
        })
      )

    /**
     * The first of two to end, well or badly; the other is interrupted. `discard` disposes of a loser that had
     * succeeded anyway (both ended at once): a stream's loser holds a scope (its slot, its request) until closed.
     */
    const first = <A, E, R>(
      a: Effect.Effect<A, E, R>,
      b: Effect.Effect<A, E, R>,
      discard: (loser: A) => Effect.Effect<void>
    ): Effect.Effect<A, E, R> => {
      const stop = (loser: Fiber.Fiber<A, E>) =>
        Effect.flatMap(Fiber.interrupt(loser), (exit) => (Exit.isSuccess(exit) ? discard(exit.value) : Effect.void))
      return Effect.raceWith(a, b, {
        onSelfDone: (exit, loser) => Effect.zipRight(stop(loser), exit),
        onOtherDone: (exit, loser) => Effect.zipRight(stop(loser), exit)
      })
    }

    /**
     * Attempt `arm` of at most `maxArms`, watched (Watch.ts: one child fiber and a timer, no race until a hedge is
     * due), and, once it is overdue, the next one beside it.
     */
    const arms = <A, E, R>(
      key: string,
      attempt: (mark: Mark) => Effect.Effect<A, E, R>,
      discard: (loser: A) => Effect.Effect<void>,
      arm: number
    ): Effect.Effect<A, E, R> => {
      const mark: Mark = { at: undefined }
      const own = timed(key, attempt, mark)
      if (arm >= maxArms) return own
      return Effect.clockWith((clock) =>
        Watch.watch(
          own,
          due(clock, key, mark, (fiber: Fiber.RuntimeFiber<A, E>) =>
            first(Watch.joinOwned(fiber, discard), arms(key, attempt, discard, arm + 1), discard)
          )
        )
      )
    }

    /**
     * The first attempt on the caller's own fiber, no child fiber (HedgeInPlace.ts): for a unary attempt whose exchange
     * can be cut (Ollama/Cut.ts), on the live clock, while no span is exported. The hedge, if one is due, and any
     * later one are forked as in `arms`.
     */
    const inPlace = <A, E, R>(key: string, attempt: (mark: Mark) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      HedgeInPlace.run<A, E, R>(
        (mark) => timed(key, attempt, mark),
        (mark) => {
          // the live clock's time (HedgeInPlace runs only on it)
          const next = overdue(key, mark, Date.now())
          return typeof next === "number"
            ? next
            : Effect.zipRight(
                next,
                arms(key, attempt, () => Effect.void, 2)
              )
        },
        arms(key, attempt, () => Effect.void, 1)
      )

    /** The race itself (see `Hedger.run`). */
    const race = <A, E, R>(
      key: string,
      attempt: (mark: Mark) => Effect.Effect<A, E, R>,
      discard: (loser: A) => Effect.Effect<void> = () => Effect.void,
      cuttable = false
    ): Effect.Effect<A, E, R> =>
      Effect.suspend(() => {
        tokens = Math.min(burst, tokens + budget)
        if (budget === 0) return timed(key, attempt, { at: undefined })
        return cuttable ? inPlace(key, attempt) : arms(key, attempt, discard, 1)
      })

    return {
      run: (key, attempt, cuttable) => race(key, attempt, undefined, cuttable),
      stream: <A, E, R>(key: string, attempt: (mark: Mark) => Stream.Stream<A, E, R>) =>
        Stream.unwrapScoped(
          Effect.map(
            Effect.acquireRelease(
              // an acquisition is uninterruptible; the race must not be (its timer, a caller that goes away)
              Effect.interruptible(
                race(
                  key,
                  (mark: Mark) => open(attempt(mark)),
                  (loser) => Scope.close(loser.scope, Exit.void)
                )
              ),
              (opened, exit) => Scope.close(opened.scope, exit)
            ),
            (opened) => Stream.concat(Stream.fromChunk(opened.first), Stream.repeatEffectChunkOption(opened.pull))
          )
        ),
      hedges: Effect.sync(() => hedges)
    } satisfies Hedger
  })
