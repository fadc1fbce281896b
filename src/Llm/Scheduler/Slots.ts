/**
 * The slots of one backend: a prioritized semaphore in front of it, so that Sluice never sends it more than its
 * limit and, when calls contend, interactive ones go first. The limit is fixed or learned (AdaptiveLimit.ts).
 *
 * Semantics:
 * - Three classes, interactive > normal > batch, FIFO within a class; a waiter is promoted one class per
 *   `agingEvery` of waiting, so a batch call is never starved by a stream of interactive ones (Line.ts).
 * - At most `capacity` callers wait in the line. A caller that finds it full either waits for room (`wait: true`,
 *   the default: backpressure) or fails at once with `QueueFull`, whose `retryAfterMs` estimates when a slot would
 *   come (callers ahead / limit x recent service time).
 * - An interrupted waiter leaves at once; if it was granted a permit at that very moment it gives it back.
 * - A limit that grows admits waiters at once; one that shrinks cuts no call, admissions wait for inFlight < limit.
 * - The latency of each call (from holding the slot to the end) and its outcome feed the adaptive limit.
 * - A fixed limit is a ceiling, not a promise: 503 busy (and timeouts) halve it as they would an adaptive one, and
 *   it grows back by one per window of calls that used it, never above the configured number (`fixedLimit`). A
 *   backend configured with more slots than it has thus answers a few 503s (which the engine re-queues,
 *   Pipeline.ts) and then gets only what it takes. Transport failures (resets, refusals) are faults, not load:
 *   they change no limit.
 * - `reserve` waits in the same line for a permit that one later `withSlot` call claims (the engine's admission,
 *   Llm.ts): a caller can thus wait before it builds its whole pipeline, so a queued call costs a parked fiber and
 *   a waiter, not the fibers, spans and closures of everything around the slot. Its wait may have a deadline; one
 *   timer fiber per line (`sweep`), started on demand and stopped when no deadline is left, wakes the expired.
 *
 * Implementation: a synchronous gate (Gate.ts) mutated in one `Effect.sync` per operation, plus a `Deferred` per
 * waiter. Chosen over STM (TPriorityQueue is unstable and STM retries cost allocations) and over a Ref of
 * immutable queues (removal of an interrupted waiter would copy the queue): the engine pushes thousands of calls
 * per second through this, and the uncontended path is one sync block on each side of the call. A grant wakes
 * exactly one waiter, unlike `Effect.Semaphore`, whose release wakes every waiter to re-check. Measured on the 2-core
 * dev machine with calls that only yield: ~80k calls/s uncontended, ~15-20k calls/s with 1,000 callers on 8 slots
 * (`Effect.Semaphore(8)` under the same 1,000 callers: ~400 calls/s). Time comes from `Clock`, so TestClock drives
 * aging and latencies in tests. Public methods carry no spans: they wrap every backend call (the engine's span does).
 */
import { Cause, Clock, Context, Duration, Effect, Exit, FiberRef, Option } from "effect"
import type { Scope } from "effect"
import { isLlmError, QueueFull } from "../../Domain/LlmError.js"
import type * as AdaptiveLimit from "./AdaptiveLimit.js"
import { resolve } from "./AdaptiveLimit.js"
import { Gate, type Ticket, type Waiter } from "./Gate.js"
import { Sweeper } from "./Sweeper.js"
import * as Recorders from "../../Observability/Recorders.js"

export type Priority = "interactive" | "normal" | "batch"

/** The classes, best first. */
export const priorities: ReadonlyArray<Priority> = ["interactive", "normal", "batch"]

const rankOf: Readonly<Record<Priority, number>> = { interactive: 0, normal: 1, batch: 2 }

export type Outcome = AdaptiveLimit.Outcome

export interface Options {
  /** Fixed slots, or a limit learned from latencies. */
  readonly limit: number | "adaptive"
  readonly adaptive?: AdaptiveLimit.Options | undefined
  /** Callers waiting in the line at most; default 1024. */
  readonly capacity?: number | undefined
  /** A waiter is promoted one class per this much waiting; default 2 seconds; `Duration.infinity`: no aging. */
  readonly agingEvery?: Duration.DurationInput | undefined
  /** What a call's exit says about the backend; default `classify`. */
  readonly classify?: ((exit: Exit.Exit<unknown, unknown>) => Outcome) | undefined
}

/** The defaults, in one place. */
export const defaults = { capacity: 1024, agingEvery: "2 seconds" } as const

export interface Snapshot {
  readonly limit: number
  readonly inFlight: number
  /** Callers in the line (at most `capacity`). */
  readonly queued: number
  /** Callers waiting for room in a full line (`wait: true`). */
  readonly blocked: number
  /** Callers in the line by the class they asked for. */
  readonly byPriority: Readonly<Record<Priority, number>>
  /** How long the longest waiter (line or blocked) has waited, ms; 0 when nobody waits. */
  readonly oldestWaitMs: number
  /** Everyone waiting, in admission order as of now (the line, then the blocked); position 0 goes next. */
  readonly waiters: ReadonlyArray<{ readonly priority: Priority; readonly position: number; readonly waitedMs: number }>
  /** Calls refused with QueueFull so far. */
  readonly rejected: number
}

/** A permit taken ahead by `reserve`: claimed by one `withSlot` of the same Slots, or given back by `release`. */
export interface Reservation {
  /** Gives the permit back unless a call claimed it; safe to run more than once. */
  readonly release: Effect.Effect<void>
}

interface Reserved extends Reservation {
  readonly gate: Gate
  readonly ticket: Ticket
  claimed: boolean
}

/** A slot held for the life of a Scope (`acquire`). */
export interface Held {
  /** Reports latency (until now) and outcome; the slot itself is released when the Scope closes. */
  readonly done: (outcome: Outcome, work?: number) => Effect.Effect<void>
  /** Gives the permit back now, while the call goes on (see `Lease`). */
  readonly release: Effect.Effect<void>
}

/**
 * Filled by `withSlot` once the call holds its permit: `release` gives the permit back early while the call goes
 * on. For a call given up as stalled (Hedge.ts): it no longer counts against the limit, so the line moves on
 * instead of waiting behind a request that may hang for minutes. The permit is released once either way.
 */
export interface Lease {
  release?: Effect.Effect<void> | undefined
}

export interface Slots {
  /**
   * Runs `effect` holding one slot; waits in the priority line first. When the line is full: waits for room
   * (`wait: true`, the default) or fails at once with QueueFull. The latency of `effect` and its outcome
   * (`Options.classify`) feed the adaptive limit; `work` sizes a success (e.g. output tokens).
   */
  readonly withSlot: <A, E, R, E2 = never>(
    priority: Priority,
    effect: Effect.Effect<A, E, R>,
    options?: {
      readonly wait?: boolean | undefined
      readonly work?: ((a: A) => number) | undefined
      /** A permit reserved ahead on these slots: used instead of waiting (ignored if claimed or foreign). */
      readonly reserved?: Reservation | undefined
      /** The wait ends at this instant (Clock ms) with `onExpired()`; requires `onExpired`. */
      readonly deadlineAt?: number | undefined
      readonly onExpired?: (() => E2) | undefined
      /** Filled with the early release of the permit once it is held. */
      readonly lease?: Lease | undefined
    }
  ) => Effect.Effect<A, E | E2 | QueueFull, R>
  /**
   * Waits in the line for a permit without using it yet (see the module comment). Undefined when the line is
   * full and `wait` is false, or when `deadlineAt` (Clock ms) passed first: the caller then takes the ordinary
   * path, which fails or refuses as usual. The caller must `release` a reservation no call claimed.
   */
  readonly reserve: (
    priority: Priority,
    options?: { readonly wait?: boolean | undefined; readonly deadlineAt?: number | undefined }
  ) => Effect.Effect<Reservation | undefined>
  /**
   * `reserve`, then `use` the reservation (or undefined, as above); a reservation no call claimed is given back
   * when `use` ends, however it ends. Only the wait is interruptible. One frame less per waiter than `reserve`
   * plus a caller's own acquire/release, which matters when thousands wait (Admission.ts).
   */
  readonly withReservation: <A, E, R>(
    priority: Priority,
    options: { readonly wait?: boolean | undefined; readonly deadlineAt?: number | undefined },
    use: (reservation: Reservation | undefined) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
  /** The same, holding the slot for the life of the current Scope (for streams); `done` reports the outcome. */
  readonly acquire: (
    priority: Priority,
    options?: {
      readonly wait?: boolean | undefined
      /** A permit reserved ahead on these slots: used instead of waiting (ignored if claimed or foreign). */
      readonly reserved?: Reservation | undefined
    }
  ) => Effect.Effect<Held, QueueFull, Scope.Scope>
  readonly snapshot: Effect.Effect<Snapshot>
}

/**
 * The default classification: success ok; an error whose `overload` is set (Domain/LlmError.ts: 503 busy, a
 * timeout) or effect's TimeoutException overload; the rest ignored.
 */
export const classify = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "ok"
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return "ignore"
  const error = failure.value
  return Cause.isTimeoutException(error) || (isLlmError(error) && error.overload) ? "overload" : "ignore"
}

// `f` runs inside clockWith's own step (one step, not two: it is on every call's path, several times)
const now = <A>(f: (now: number) => A): Effect.Effect<A> =>
  Effect.clockWith((clock) => Effect.succeed(f(clock.unsafeCurrentTimeMillis())))

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** How a caller's turn in the line ended. */
type Turn =
  | { readonly _tag: "Granted"; readonly ticket: Ticket }
  | { readonly _tag: "Full"; readonly retryAfterMs: number }
  | { readonly _tag: "Expired" }

const expired: Turn = { _tag: "Expired" }

/**
 * Suspends until the gate wakes `waiter`; interrupted, it leaves the line (or gives back a permit just granted).
 * Runs inside the caller's uninterruptible region with only the wait `restore`d: the leaving is one failure
 * handler there, not an `Effect.async` canceler, whose onInterrupt layers cost ~2 KB per waiter (bench/memory).
 */
const awaitWake = (gate: Gate, sweeper: Sweeper, waiter: Waiter, restore: Restore): Effect.Effect<void> =>
  Effect.catchAllCause(
    restore(
      Effect.async<void>((resume) => {
        if (waiter.woken) resume(Effect.void)
        else waiter.wake = () => resume(Effect.void)
      })
    ),
    (cause) =>
      Effect.zipRight(
        now((t) => {
          waiter.wake = undefined
          gate.cancel(waiter, t)
          sweeper.stopIfIdle()
        }),
        Effect.failCause(cause)
      )
  )

/** How a wait ended: granted (its wait recorded) or expired. Built only once woken: a waiter holds no more. */
const afterWake = (sweeper: Sweeper, waiter: Waiter, priority: Priority): Effect.Effect<Turn> => {
  sweeper.stopIfIdle()
  if (!waiter.granted) return Effect.succeed(expired)
  const granted: Turn = { _tag: "Granted", ticket: waiter }
  return Effect.as(
    Effect.flatMap(
      now((t) => t - waiter.since),
      (waited) => Recorders.recordQueueWait(priority, waited)
    ),
    granted
  )
}

/**
 * Takes a turn in the line: a permit at once, a refusal (full line, `wait: false`), or a wait that ends with a
 * permit or at `deadlineAt`. Only the wait itself is interruptible (`restore`); the bookkeeping is not.
 */
const turn = (
  gate: Gate,
  sweeper: Sweeper,
  priority: Priority,
  wait: boolean,
  deadlineAt: number,
  restore: Restore
): Effect.Effect<Turn> =>
  // entered, and a permit granted at once recorded, in one step (every call passes here)
  Effect.withFiberRuntime((fiber): Effect.Effect<Turn> => {
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const entered = gate.enter(rankOf[priority], wait, clock.unsafeCurrentTimeMillis(), deadlineAt)
    switch (entered._tag) {
      case "Granted":
        Recorders.queueWaitEnded(priority, 0, fiber.getFiberRef(FiberRef.currentMetricLabels))
        return Effect.succeed(entered)
      case "Full":
        return Effect.succeed(entered)
      case "Waiting": {
        const waiter = entered.waiter
        const woken = Effect.flatMap(awaitWake(gate, sweeper, waiter, restore), () =>
          afterWake(sweeper, waiter, priority)
        )
        return Number.isFinite(deadlineAt) ? Effect.zipRight(sweeper.arm(deadlineAt), woken) : woken
      }
    }
  })

/** Takes a permit: refused with QueueFull, or failed with `onExpired()` when `deadlineAt` passes first. */
const take = <E = never>(
  gate: Gate,
  sweeper: Sweeper,
  priority: Priority,
  options: { readonly wait: boolean; readonly deadlineAt: number; readonly onExpired?: (() => E) | undefined },
  restore: Restore
): Effect.Effect<Ticket, QueueFull | E> =>
  Effect.flatMap(
    turn(gate, sweeper, priority, options.wait, options.deadlineAt, restore),
    (result): Effect.Effect<Ticket, QueueFull | E> => {
      switch (result._tag) {
        case "Granted":
          return Effect.succeed(result.ticket)
        case "Full":
          return Effect.zipRight(
            Recorders.recordQueueRejection(priority),
            Effect.fail(new QueueFull({ capacity: gate.capacity, retryAfterMs: result.retryAfterMs }))
          )
        case "Expired":
          return options.onExpired === undefined
            ? Effect.die("slot wait expired without onExpired")
            : Effect.fail(options.onExpired())
      }
    }
  )

const finish = (gate: Gate, ticket: Ticket, outcome: Outcome, work: number | undefined) =>
  now((t) => {
    gate.report(ticket, t, outcome, work)
    gate.release(ticket, t)
  })

const snapshotOf = (gate: Gate, t: number): Snapshot => {
  const counts = gate.line.counts()
  const waiting = [...gate.line.ordered(t), ...gate.blocked.ordered(t)]
  const oldest = Math.min(gate.line.oldest() ?? t, gate.blocked.oldest() ?? t)
  return {
    limit: gate.limit,
    inFlight: gate.inFlight,
    queued: gate.line.size,
    blocked: gate.blocked.size,
    byPriority: { interactive: counts[0]!, normal: counts[1]!, batch: counts[2]! },
    oldestWaitMs: t - oldest,
    waiters: waiting.map((w, position) => ({ priority: priorities[w.rank]!, position, waitedMs: t - w.since })),
    rejected: gate.rejected
  }
}

/**
 * A configured limit as an adaptive one that starts at it and never exceeds it, and that latency alone never
 * lowers (infinite tolerance, no baseline probes): only overload halves it (see the module comment).
 */
export const fixedLimit = (slots: number): AdaptiveLimit.Resolved => {
  const n = Math.max(1, Math.floor(slots))
  return { ...resolve({ initial: n, min: 1, max: n, probeEvery: 0 }), tolerance: Infinity }
}

const makeGate = (options: Options): Gate =>
  new Gate({
    limit: options.limit === "adaptive" ? resolve(options.adaptive) : fixedLimit(options.limit),
    capacity: options.capacity ?? defaults.capacity,
    agingMs: Duration.toMillis(options.agingEvery ?? defaults.agingEvery)
  })

/** The reservation, if this gate's call can claim it (not claimed yet, not given back). */
const claimable = (gate: Gate, reservation: Reservation | undefined): Reserved | undefined => {
  const reserved = reservation as Reserved | undefined
  return reserved === undefined || reserved.gate !== gate || reserved.claimed || reserved.ticket.released
    ? undefined
    : reserved
}

/** Claims a `claimable` reservation at `t`: its ticket is the call's from then on. */
const claimNow = (gate: Gate, reserved: Reserved, t: number): Ticket => {
  reserved.claimed = true
  reserved.ticket.startedAt = t
  reserved.ticket.inFlight = gate.inFlight
  return reserved.ticket
}

const claim = (gate: Gate, reservation: Reservation | undefined): Effect.Effect<Ticket> | undefined => {
  const reserved = claimable(gate, reservation)
  return reserved === undefined ? undefined : now((t) => claimNow(gate, reserved, t))
}

const reservationOf = (gate: Gate, ticket: Ticket): Reserved => {
  const reserved: Reserved = {
    gate,
    ticket,
    claimed: false,
    release: Effect.suspend(() => (reserved.claimed ? Effect.void : finish(gate, ticket, "ignore", undefined)))
  }
  return reserved
}

const reserveOn = (
  gate: Gate,
  sweeper: Sweeper,
  priority: Priority,
  wait: boolean,
  deadlineAt: number
): Effect.Effect<Reservation | undefined> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.map(turn(gate, sweeper, priority, wait, deadlineAt, restore), (result) =>
      result._tag === "Granted" ? reservationOf(gate, result.ticket) : undefined
    )
  )

const withReservationOn = <A, E, R>(
  gate: Gate,
  sweeper: Sweeper,
  priority: Priority,
  wait: boolean,
  deadlineAt: number,
  use: (reservation: Reservation | undefined) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(turn(gate, sweeper, priority, wait, deadlineAt, restore), (result) => {
      if (result._tag !== "Granted") return restore(use(undefined))
      const reservation = reservationOf(gate, result.ticket)
      // `Effect.ensuring` without a region of its own (this one is uninterruptible already), and nothing to give
      // back when the call's attempt claimed the reservation (the usual case)
      const ended = <X extends Exit.Exit<A, E>>(exit: X): Effect.Effect<A, E> =>
        reservation.claimed ? exit : Effect.zipRight(reservation.release, exit)
      return Effect.matchCauseEffect(restore(use(reservation)), {
        onFailure: (cause) => ended(Exit.failCause(cause)),
        onSuccess: (a) => ended(Exit.succeed(a))
      })
    })
  )

/** Slots over a gate built now (synchronously; `make` is the effectful constructor). */
export const unsafeMake = (options: Options): Slots => {
  const gate = makeGate(options)
  const sweeper = new Sweeper(gate)
  const classifyExit = options.classify ?? classify
  return {
    withSlot: (priority, effect, callOptions) =>
      // one region, the clock read once (claim, release and the slot's report in steps the call already takes:
      // every attempt of every call passes here)
      Effect.uninterruptibleMask((restore) =>
        Effect.clockWith((clock) => {
          const run = (ticket: Ticket) => {
            if (callOptions?.lease !== undefined) callOptions.lease.release = now((t) => gate.release(ticket, t))
            const done = <X extends Exit.Exit<unknown, unknown>>(exit: X, work?: number): X => {
              const t = clock.unsafeCurrentTimeMillis()
              gate.report(ticket, t, classifyExit(exit), work)
              gate.release(ticket, t)
              return exit
            }
            return Effect.matchCauseEffect(restore(effect), {
              onFailure: (cause) => done(Exit.failCause(cause)),
              onSuccess: (a) => done(Exit.succeed(a), callOptions?.work?.(a))
            })
          }
          const reserved = claimable(gate, callOptions?.reserved)
          if (reserved !== undefined) return run(claimNow(gate, reserved, clock.unsafeCurrentTimeMillis()))
          const options = {
            wait: callOptions?.wait ?? true,
            deadlineAt: callOptions?.deadlineAt ?? Infinity,
            onExpired: callOptions?.onExpired
          }
          return Effect.flatMap(take(gate, sweeper, priority, options, restore), run)
        })
      ),
    acquire: (priority, callOptions) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(
          claim(gate, callOptions?.reserved) ??
            take(gate, sweeper, priority, { wait: callOptions?.wait ?? true, deadlineAt: Infinity }, restore),
          (ticket) =>
            Effect.as(
              Effect.addFinalizer(() => finish(gate, ticket, "ignore", undefined)),
              {
                done: (outcome: Outcome, work?: number) => now((t) => gate.report(ticket, t, outcome, work)),
                release: now((t) => gate.release(ticket, t))
              }
            )
        )
      ),
    reserve: (priority, callOptions) =>
      reserveOn(gate, sweeper, priority, callOptions?.wait ?? true, callOptions?.deadlineAt ?? Infinity),
    withReservation: (priority, callOptions, use) =>
      withReservationOn(gate, sweeper, priority, callOptions.wait ?? true, callOptions.deadlineAt ?? Infinity, use),
    snapshot: now((t) => snapshotOf(gate, t))
  }
}

/** A backend's slots, fixed or adaptive. */
export const make = (options: Options): Effect.Effect<Slots> => Effect.sync(() => unsafeMake(options))
