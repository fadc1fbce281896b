/**
 * The synchronous state under `ResponseCache`: the LRU of entries with their expiry, the counters, and the map of
 * in-flight unary misses. `ResponseCache` holds the effectful policies; this module only answers "is there a fresh
 * entry at this instant", "store this", "give me whatever is there".
 *
 * Choices:
 * - Mutable and synchronous: every method is called from one `Effect.sync`/`map` step, which the single-threaded
 *   runtime runs without interleaving, so a check-then-register (hit? flight? lead) is atomic without a lock.
 * - The size of an entry is the length of its JSON in bytes, counted twice when the value keeps the text it came
 *   as (Ollama/Wire.ts: the gateway forwards that text; both are held): the bytes the exchange counted, else the
 *   text's, else the value written as JSON. A value that cannot be written as JSON is not stored.
 * - Values are kept as given (no clone): callers never mutate wire objects.
 * - Expired entries stay until the LRU pushes them out, so `stale` can still read them; `fresh` and `stale` both
 *   mark the entry as used, so a served entry is protected from eviction.
 */
import { Deferred, Effect, Exit, FiberId, Option } from "effect"
import * as Wire from "../Ollama/Wire.js"
import { Lru } from "./Lru.js"
import type { CacheCounts } from "../Observability/Sampler.js"

/**
 * Counters since the cache was made (cumulative), and the current size: the shape the metrics sampler reads,
 * declared once there (Observability sits below Llm and cannot import it).
 */
export type CacheStats = CacheCounts

/** The cumulative counters of `CacheStats`. */
export type Counter = Exclude<keyof CacheStats, "entries" | "bytes">

/** A leader's outcome for its followers; `None` when it was interrupted and they should start over. */
export type Outcome = Option.Option<Exit.Exit<unknown, unknown>>

/**
 * An in-flight unary miss. Its followers wait on a Deferred made when the first of them arrives: most misses have
 * none, and a Deferred made per miss is Effect's `{ ...CommitPrototype, ... }` literal, which Node 20 (V8 11) gives
 * a fresh hidden class per property on every call (Observability/Track.ts `upstream` says more).
 */
export class Flight {
  private outcome: Outcome | undefined = undefined
  private waiting: Deferred.Deferred<Outcome> | undefined = undefined

  /** The leader's outcome, once it settles. */
  wait(): Effect.Effect<Outcome> {
    return Effect.suspend(() => {
      if (this.outcome !== undefined) return Effect.succeed(this.outcome)
      this.waiting ??= Deferred.unsafeMake(FiberId.none)
      return Deferred.await(this.waiting)
    })
  }

  /** Settles the flight: its followers, and any that come later, get `outcome`. */
  done(outcome: Outcome): void {
    this.outcome = outcome
    if (this.waiting !== undefined) Deferred.unsafeDone(this.waiting, Exit.succeed(outcome))
  }
}

/** The bytes an entry holds (see the choices above), or undefined when the value cannot be written as JSON. */
export const sizeOf = (value: unknown): number | undefined => {
  const text = Wire.textOf(value)
  if (text !== undefined) return 2 * (Wire.bytesOf(value) ?? Buffer.byteLength(text, "utf8"))
  try {
    const json = JSON.stringify(value)
    return json === undefined ? 0 : Buffer.byteLength(json, "utf8")
  } catch {
    return undefined
  }
}

/** Entries, counters and in-flight misses of one cache. */
export class CacheStore {
  readonly flights = new Map<string, Flight>()
  private readonly lru: Lru<unknown>
  private readonly counters: Record<Counter, number> = {
    hits: 0,
    misses: 0,
    staleServed: 0,
    evictions: 0,
    coalesced: 0,
    refreshes: 0,
    bypasses: 0
  }

  constructor(
    maxEntries: number,
    maxBytes: number,
    private readonly ttlMillis: number
  ) {
    this.lru = new Lru(maxEntries, maxBytes)
  }

  count(counter: Counter): void {
    this.counters[counter]++
  }

  /**
   * Stores a value, fresh until `now + ttl` (or `now + ttlMillis`: an entry of the shared tier keeps the time it
   * has left there), evicting least recently used entries over the bounds.
   */
  store(slot: string, value: unknown, now: number, ttlMillis: number = this.ttlMillis): void {
    const bytes = sizeOf(value)
    if (bytes === undefined) return
    this.counters.evictions += this.lru.set(slot, { value, bytes, expiresAt: now + ttlMillis }).evicted
  }

  /** The value if fresh at `now` (marked as used); an expired entry is left in place. */
  fresh(slot: string, now: number): Option.Option<unknown> {
    const entry = this.lru.peek(slot)
    if (entry === undefined || now >= entry.expiresAt) return Option.none()
    this.lru.get(slot)
    return Option.some(entry.value)
  }

  /** The value even if expired (marked as used); counts as stale served when found. */
  stale(slot: string): Option.Option<unknown> {
    const entry = this.lru.get(slot)
    if (entry === undefined) return Option.none()
    this.counters.staleServed++
    return Option.some(entry.value)
  }

  delete(slot: string): void {
    this.lru.delete(slot)
  }

  clear(): void {
    this.lru.clear()
  }

  stats(): CacheStats {
    return { ...this.counters, entries: this.lru.size, bytes: this.lru.bytes }
  }
}
