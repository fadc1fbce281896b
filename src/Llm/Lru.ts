/**
 * A small strict LRU map bounded by entry count and by total bytes, the storage under `ResponseCache`.
 *
 * Why not effect's `Cache`: in 3.22.4 it evicts in first-insertion order and a hit does not protect an entry
 * (reference effect-3.md, pitfall 20 and §3 (l)), and it has no byte bound. A JavaScript `Map` iterates in
 * insertion order, so "touch" is delete + set and the least recently used entry is always the first key.
 *
 * Choices:
 * - Synchronous and mutable on purpose: the owning service calls it inside `Effect.sync` blocks, which the
 *   single-threaded runtime runs atomically, so no lock is needed.
 * - Each entry carries its size (computed by the caller) and its expiry; the LRU does not read the clock and
 *   never drops an entry because it expired (expired entries are kept for stale serving until pushed out).
 * - An entry larger than `maxBytes` on its own is refused rather than emptying the whole cache for it.
 * - Eviction reads the oldest key from one iterator kept across calls, not from a new `keys()` each time. A `Map`
 *   keeps a deleted entry as a hole until it next grows, and a new iterator walks the holes from the start: with
 *   10,000 entries evicting one per insert, that was ~6 µs per eviction against ~0.3 µs (2026-12-06). A kept iterator
 *   is live (it skips entries deleted after it was made and reaches entries added since), and every key behind it was
 *   evicted by it, so its next key is the least recently used one. Once it is done it stays done: a new one is made.
 */

/** One stored value with its accounted size and the instant (epoch ms) after which it is no longer fresh. */
export interface LruEntry<V> {
  readonly value: V
  readonly bytes: number
  readonly expiresAt: number
}

/** What `set` did: whether the entry was stored, and how many older entries it pushed out. */
export interface SetResult {
  readonly stored: boolean
  readonly evicted: number
}

/** A mutable strict LRU map bounded by `maxEntries` and `maxBytes`. */
export class Lru<V> {
  private readonly map = new Map<string, LruEntry<V>>()
  private oldest: Iterator<string> = this.map.keys()
  private totalBytes = 0

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number
  ) {}

  /** Number of entries held. */
  get size(): number {
    return this.map.size
  }

  /** Sum of the entries' sizes. */
  get bytes(): number {
    return this.totalBytes
  }

  /** The entry, marked as most recently used. */
  get(key: string): LruEntry<V> | undefined {
    const entry = this.map.get(key)
    if (entry !== undefined) {
      this.map.delete(key)
      this.map.set(key, entry)
    }
    return entry
  }

  /** The entry, without changing its recency. */
  peek(key: string): LruEntry<V> | undefined {
    return this.map.get(key)
  }

  /** Stores (or replaces) an entry as most recently used, then evicts least recently used ones over the bounds. */
  set(key: string, entry: LruEntry<V>): SetResult {
    this.delete(key)
    if (entry.bytes > this.maxBytes || this.maxEntries <= 0) return { stored: false, evicted: 0 }
    this.map.set(key, entry)
    this.totalBytes += entry.bytes
    return { stored: true, evicted: this.evictOverBounds() }
  }

  /** Removes an entry; true when there was one. */
  delete(key: string): boolean {
    const entry = this.map.get(key)
    if (entry === undefined) return false
    this.map.delete(key)
    this.totalBytes -= entry.bytes
    return true
  }

  /** Removes every entry. */
  clear(): void {
    this.map.clear()
    this.oldest = this.map.keys()
    this.totalBytes = 0
  }

  private evictOverBounds(): number {
    let evicted = 0
    while (this.map.size > this.maxEntries || this.totalBytes > this.maxBytes) {
      let oldest = this.oldest.next()
      if (oldest.done === true) {
        this.oldest = this.map.keys()
        oldest = this.oldest.next()
        if (oldest.done === true) break
      }
      this.delete(oldest.value)
      evicted++
    }
    return evicted
  }
}
