/**
 * The one timer of a line (Slots.reserve): a waiter may give its wait a deadline, and rather than a timer per
 * waiter (a forked race per queued call is what admission avoids) one fiber per line sleeps until the earliest
 * deadline, wakes the expired (Gate.expireDue), and repeats while deadlines are left. It is forked on demand from
 * a caller, so it sleeps on the caller's Clock (TestClock in tests), and interrupted as soon as no waiter with a
 * deadline is left, so it never keeps a process alive. Internal to the scheduler.
 */
import { Duration, Effect, type Fiber, FiberId } from "effect"
import type { Gate } from "./Gate.js"

export class Sweeper {
  private fiber: Fiber.RuntimeFiber<void> | undefined
  /** The deadline the running timer wakes for; Infinity when none runs. */
  private at = Infinity
  /** Bumped whenever a timer is started or stopped, so a stale fork or loop never overwrites a newer one. */
  private generation = 0

  constructor(private readonly gate: Gate) {}

  /** Makes sure a timer runs for a deadline at `at`. */
  arm(at: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.at <= at) return Effect.void
      this.stop()
      this.at = at
      const generation = this.generation
      return Effect.asVoid(
        Effect.tap(Effect.forkDaemon(Effect.interruptible(this.loop(at, generation))), (fiber) => {
          if (generation === this.generation) this.fiber = fiber
          else fiber.unsafeInterruptAsFork(FiberId.none)
        })
      )
    })
  }

  /** Stops the timer if nobody waits with a deadline. */
  stopIfIdle(): void {
    if (this.gate.expiries.next() === undefined) this.stop()
  }

  private stop(): void {
    this.generation++
    this.fiber?.unsafeInterruptAsFork(FiberId.none)
    this.fiber = undefined
    this.at = Infinity
  }

  private loop(first: number, generation: number): Effect.Effect<void> {
    const step = (at: number): Effect.Effect<void> =>
      Effect.clockWith((clock) =>
        Effect.zipRight(
          Effect.sleep(Duration.millis(Math.max(0, at - clock.unsafeCurrentTimeMillis()))),
          Effect.suspend(() => {
            if (generation !== this.generation) return Effect.void
            const next = this.gate.expireDue(clock.unsafeCurrentTimeMillis())
            if (next === undefined) {
              this.generation++
              this.fiber = undefined
              this.at = Infinity
              return Effect.void
            }
            this.at = next
            return step(next)
          })
        )
      )
    return step(first)
  }
}
