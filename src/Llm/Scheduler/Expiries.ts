/**
 * The waiters of a line that gave their wait a deadline, earliest first: a binary min-heap on `expiresAt`.
 * Internal to the scheduler (Gate.ts).
 *
 * Why by hand: Effect has no mutable priority queue (SortedSet and TPriorityQueue are immutable or STM, and
 * would allocate per operation), and one sweeper per line needs "the earliest deadline" in O(log n) among
 * thousands of waiters. Entries are removed lazily: a waiter that was granted or left stays in the heap until it
 * reaches the top, where `due` and `next` skip it (`stillWaiting`).
 */
export interface Expiring {
  readonly expiresAt: number
}

export class Expiries<W extends Expiring> {
  private readonly heap: Array<W> = []

  constructor(private readonly stillWaiting: (waiter: W) => boolean) {}

  add(waiter: W): void {
    const heap = this.heap
    heap.push(waiter)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]!.expiresAt <= waiter.expiresAt) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = waiter
  }

  /** The earliest deadline of a waiter still waiting, or undefined. */
  next(): number | undefined {
    this.dropSettled()
    return this.heap[0]?.expiresAt
  }

  /** Removes and returns the waiters still waiting whose deadline is at or before `now`. */
  due(now: number): Array<W> {
    const out: Array<W> = []
    for (;;) {
      this.dropSettled()
      const top = this.heap[0]
      if (top === undefined || top.expiresAt > now) return out
      out.push(this.pop()!)
    }
  }

  clear(): void {
    this.heap.length = 0
  }

  private dropSettled(): void {
    while (this.heap.length > 0 && !this.stillWaiting(this.heap[0]!)) this.pop()
  }

  private pop(): W | undefined {
    const heap = this.heap
    const top = heap[0]
    const last = heap.pop()
    if (heap.length === 0 || last === undefined) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= heap.length) break
      const right = left + 1
      const child = right < heap.length && heap[right]!.expiresAt < heap[left]!.expiresAt ? right : left
      if (heap[child]!.expiresAt >= last.expiresAt) break
      heap[i] = heap[child]!
      i = child
    }
    heap[i] = last
    return top
  }
}
