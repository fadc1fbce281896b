/**
 * The synchronous core of `Slots`: permits, the waiting line, the overflow of callers blocked on a full line,
 * and the (fixed or adaptive) limit. Internal to the scheduler.
 *
 * Choices:
 * - Plain mutable state, changed only inside one `Effect.sync` per operation (Slots.ts). Effect runs fibers on one
 *   JS thread and a sync block never yields, so each operation is atomic without a Ref or STM, and the hot path
 *   (a free permit, nobody waiting) allocates one small ticket and nothing else. A waiter is woken through the
 *   resume callback of its `Effect.async` (`wake`), which only schedules the waiting fiber; cheaper than a
 *   Deferred per waiter, and the async's canceler is where an interrupted waiter leaves.
 * - Invariant: someone waits only if every permit is taken (`inFlight >= limit`), and someone is blocked only if
 *   the line is full. `pump` restores both after every change (a release, a cancel, a limit that grew).
 * - A shrinking limit cuts no call: admissions simply wait until `inFlight < limit`.
 * - A waiter may carry a deadline (`expiresAt`, a reservation bounded by its call's deadline, Slots.reserve):
 *   `expireDue` removes the waiters whose deadline passed and wakes them ungranted. Slots runs the one timer.
 * - `retryAfterMs` of a refusal = (callers ahead + 1) / limit x the recent service time (an EWMA of how long
 *   calls held their slot; 1 s before the first one).
 */
import * as AdaptiveLimit from "./AdaptiveLimit.js"
import { Expiries } from "./Expiries.js"
import { Line, type Entry } from "./Line.js"

/** A held permit: when and with how many in flight it was granted. */
export interface Ticket {
  startedAt: number
  inFlight: number
  /** The outcome was reported (acquire's `done`); the release only frees the permit then. */
  reported: boolean
  released: boolean
}

export interface Waiter extends Entry, Ticket {
  /** Resumes the waiting fiber (set while it is suspended, Slots.ts). */
  wake: (() => void) | undefined
  /** Granted or expired: the waiting is over. */
  woken: boolean
  granted: boolean
  /** When the wait gives up, ms (Clock time); Infinity: never. */
  readonly expiresAt: number
  /** Woken ungranted because `expiresAt` passed. */
  expired: boolean
  /** Still in the line or the overflow. */
  waiting: boolean
}

export type Entered =
  | { readonly _tag: "Granted"; readonly ticket: Ticket }
  | { readonly _tag: "Waiting"; readonly waiter: Waiter }
  | { readonly _tag: "Full"; readonly retryAfterMs: number }

export interface GateOptions {
  /** The limit's options (a fixed limit is one that only overload lowers: Slots.fixedLimit). */
  readonly limit: AdaptiveLimit.Resolved
  readonly capacity: number
  readonly agingMs: number
}

const wakeUp = (waiter: Waiter): void => {
  waiter.woken = true
  const wake = waiter.wake
  waiter.wake = undefined
  wake?.()
}

const defaultServiceMs = 1000
const serviceWeight = 0.2

export class Gate {
  readonly line: Line<Waiter>
  readonly blocked: Line<Waiter>
  readonly capacity: number
  inFlight = 0
  rejected = 0
  serviceMs: number | undefined
  adaptive: AdaptiveLimit.State
  /** Waiters with a deadline, earliest first. */
  readonly expiries = new Expiries<Waiter>((w) => w.waiting)
  private seq = 0

  constructor(private readonly options: GateOptions) {
    this.line = new Line(options.agingMs)
    this.blocked = new Line(options.agingMs)
    this.capacity = Math.max(0, options.capacity)
    this.adaptive = AdaptiveLimit.initial(options.limit)
  }

  get limit(): number {
    return AdaptiveLimit.limitOf(this.options.limit, this.adaptive)
  }

  /** A caller arrives: it gets a permit, a place in the line (or in the overflow), or a refusal. */
  enter(rank: number, wait: boolean, now: number, expiresAt = Infinity): Entered {
    if (this.line.size === 0 && this.blocked.size === 0 && this.inFlight < this.limit) {
      this.inFlight++
      return { _tag: "Granted", ticket: { startedAt: now, inFlight: this.inFlight, reported: false, released: false } }
    }
    if (this.line.size >= this.capacity && !wait) {
      this.rejected++
      return { _tag: "Full", retryAfterMs: this.retryAfterMs() }
    }
    const waiter: Waiter = {
      seq: this.seq++,
      rank,
      since: now,
      wake: undefined,
      woken: false,
      granted: false,
      expiresAt,
      expired: false,
      waiting: true,
      startedAt: now,
      inFlight: 0,
      reported: false,
      released: false
    }
    if (this.line.size < this.capacity) this.line.add(waiter)
    else this.blocked.add(waiter)
    if (Number.isFinite(expiresAt)) this.expiries.add(waiter)
    return { _tag: "Waiting", waiter }
  }

  /** Wakes, ungranted, the waiters whose deadline is at or before `now`; returns the next deadline, if any. */
  expireDue(now: number): number | undefined {
    for (const waiter of this.expiries.due(now)) {
      this.leave(waiter)
      waiter.expired = true
      wakeUp(waiter)
    }
    this.pump(now)
    return this.expiries.next()
  }

  private leave(waiter: Waiter): void {
    waiter.waiting = false
    if (!this.line.remove(waiter)) this.blocked.remove(waiter)
  }

  /** A waiter gave up (interrupted): it leaves the line, or gives back the permit granted at that moment. */
  cancel(waiter: Waiter, now: number): void {
    if (waiter.granted) return this.release(waiter, now)
    if (!waiter.waiting) return
    this.leave(waiter)
    this.pump(now)
  }

  /** Feeds a finished call's outcome to the adaptive limit (once per ticket). */
  report(ticket: Ticket, now: number, outcome: AdaptiveLimit.Outcome, work: number | undefined): void {
    if (ticket.reported) return
    ticket.reported = true
    const latencyMs = now - ticket.startedAt
    if (outcome !== "ignore") {
      this.serviceMs =
        this.serviceMs === undefined ? latencyMs : this.serviceMs + serviceWeight * (latencyMs - this.serviceMs)
    }
    const sample = { latencyMs, outcome, inFlight: ticket.inFlight, work }
    this.adaptive = AdaptiveLimit.update(this.options.limit, this.adaptive, sample)
    this.pump(now)
  }

  /** Gives the permit back (once per ticket) and admits whoever may go now. */
  release(ticket: Ticket, now: number): void {
    if (ticket.released) return
    ticket.released = true
    this.inFlight--
    this.pump(now)
  }

  /** Moves blocked callers into the line while it has room, and grants permits while there are some. */
  pump(now: number): void {
    for (;;) {
      while (this.line.size < this.capacity && this.blocked.size > 0) this.line.add(this.blocked.take(now)!)
      if (this.inFlight >= this.limit) return
      const next = this.line.take(now) ?? this.blocked.take(now)
      if (next === undefined) return
      this.grant(next, now)
    }
  }

  private grant(waiter: Waiter, now: number): void {
    this.inFlight++
    waiter.granted = true
    waiter.waiting = false
    waiter.startedAt = now
    waiter.inFlight = this.inFlight
    wakeUp(waiter)
  }

  retryAfterMs(): number {
    const ahead = this.line.size + this.blocked.size
    return Math.max(1, Math.ceil(((ahead + 1) / Math.max(1, this.limit)) * (this.serviceMs ?? defaultServiceMs)))
  }
}
