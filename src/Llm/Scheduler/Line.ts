/**
 * The waiting line of `Slots`: one FIFO per priority class, with aging. Internal to the scheduler.
 *
 * Choices:
 * - A class is a `Map` keyed by the waiter's sequence number: a Map iterates in insertion order, so its first
 *   entry is the oldest waiter of the class (FIFO without relying on a priority queue's tie order), and an
 *   interrupted waiter leaves in O(1).
 * - Aging: a waiter's effective class drops by one per `agingMs` of waiting (0 = interactive). The oldest waiter
 *   of a class has waited longest, so it also has the best effective class in it: the next waiter is the best of
 *   the three heads by (effective class, sequence). A batch waiter that aged to interactive thus goes before
 *   interactive calls that arrived after it, and no class starves.
 * - Mutable, and touched only inside one `Effect.sync` at a time (see Gate.ts).
 */

/** A waiter as the line sees it. */
export interface Entry {
  readonly seq: number
  /** 0 = interactive, 1 = normal, 2 = batch. */
  readonly rank: number
  /** When it started waiting, ms. */
  readonly since: number
}

export const ranks = 3

export class Line<W extends Entry> {
  private readonly classes: ReadonlyArray<Map<number, W>> = Array.from({ length: ranks }, () => new Map())
  size = 0

  constructor(private readonly agingMs: number) {}

  /** The class a waiter competes in now. */
  effectiveRank(waiter: W, now: number): number {
    if (!(this.agingMs > 0)) return 0
    return Math.max(0, waiter.rank - Math.floor((now - waiter.since) / this.agingMs))
  }

  add(waiter: W): void {
    this.classes[waiter.rank]!.set(waiter.seq, waiter)
    this.size++
  }

  /** Removes `waiter` if it is in the line; says whether it was. */
  remove(waiter: W): boolean {
    const removed = this.classes[waiter.rank]!.delete(waiter.seq)
    if (removed) this.size--
    return removed
  }

  /** The waiter to admit next, left in the line. */
  peek(now: number): W | undefined {
    let best: W | undefined
    let bestRank = ranks
    for (const line of this.classes) {
      const head = first(line)
      if (head === undefined) continue
      const rank = this.effectiveRank(head, now)
      if (rank < bestRank || (rank === bestRank && head.seq < best!.seq)) {
        best = head
        bestRank = rank
      }
    }
    return best
  }

  /** Removes and returns the waiter to admit next. */
  take(now: number): W | undefined {
    const next = this.peek(now)
    if (next !== undefined) this.remove(next)
    return next
  }

  /** Waiters per original class. */
  counts(): ReadonlyArray<number> {
    return this.classes.map((line) => line.size)
  }

  /** Every waiter, in the order they would be admitted if nothing changed from `now`. */
  ordered(now: number): ReadonlyArray<W> {
    const all = this.classes.flatMap((line) => Array.from(line.values()))
    const keyed = all.map((waiter) => ({ waiter, rank: this.effectiveRank(waiter, now) }))
    keyed.sort((a, b) => a.rank - b.rank || a.waiter.seq - b.waiter.seq)
    return keyed.map((k) => k.waiter)
  }

  /** When the oldest waiter started waiting, or undefined when the line is empty. */
  oldest(): number | undefined {
    let since: number | undefined
    for (const line of this.classes) {
      const head = first(line)
      if (head !== undefined && (since === undefined || head.since < since)) since = head.since
    }
    return since
  }
}

const first = <W>(line: Map<number, W>): W | undefined => {
  if (line.size === 0) return undefined
  return line.values().next().value
}
