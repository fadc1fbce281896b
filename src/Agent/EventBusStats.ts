/**
 * The event bus's counters, read through `EventBus.stats` (and by the metrics module). Mutable and synchronous:
 * every update is one `Effect.sync` step, which the single-threaded runtime never interleaves.
 */
import type { BusStats } from "./EventBusTopic.js"

export type PerHandler = "delivered" | "failures" | "dropped"

export class Counters {
  published = 0
  deadLetters = 0
  deadLettersLost = 0
  private readonly perHandler: Record<PerHandler, Map<string, number>> = {
    delivered: new Map(),
    failures: new Map(),
    dropped: new Map()
  }

  count(counter: PerHandler, handler: string): void {
    const counts = this.perHandler[counter]
    counts.set(handler, (counts.get(handler) ?? 0) + 1)
  }

  snapshot(): Omit<BusStats, "topics"> {
    return {
      published: this.published,
      delivered: Object.fromEntries(this.perHandler.delivered),
      failures: Object.fromEntries(this.perHandler.failures),
      dropped: Object.fromEntries(this.perHandler.dropped),
      deadLetters: this.deadLetters,
      deadLettersLost: this.deadLettersLost
    }
  }
}
