/**
 * The response cache (ARCHITECTURE §3): exact-match entries keyed by `CacheKey.keyOf`, in front of the budget and
 * the backends, so a hit costs no upstream call, no rate-limit token and no budget.
 *
 * Choices:
 * - Storage is `ResponseCacheStore` over the hand-written strict LRU of `Lru.ts` (effect's `Cache` evicts in
 *   first-insertion order in 3.22.4, see effect-3.md pitfall 20), bounded by entries and by bytes of JSON.
 * - TTL per entry from `Clock`. An expired entry is not served by `get`/`lookupStream`, but it is kept (until the
 *   LRU pushes it out) so `stale`/`staleStream` can serve it to the fallback layer.
 * - Unary and stream entries live apart under one key (a stored stream is not turned into a unary answer or
 *   back: the shapes differ per endpoint); `invalidate` drops both.
 * - Unary misses are single-flight: identical concurrent misses wait for one leader and get its exit, success or
 *   failure (failures are never stored). If the leader is interrupted, its followers are not failed: they start
 *   over, so one of them becomes the new leader and the others follow it.
 * - Streams are not coalesced: a follower would have to wait for the whole generation before its first token and
 *   would stall with a slow or stopped leader. A stream miss passes chunks through as they come while recording
 *   them; the recording is stored only if the stream closes without failure or interruption and the last chunk
 *   the consumer pulled satisfies `isComplete` (the done chunk). A failed, interrupted or partly consumed stream
 *   is never stored. A hit replays the chunks at once.
 * - `lookupStream` decides hit or miss when it runs (the chunks of a hit are taken then); the stream runs later.
 * - `refresh` always computes and stores a success; `bypass` neither reads nor writes. Neither joins a flight.
 * - With `Redis` configured (a scale-out deployment), a local miss asks a shared level in Redis, with stampede
 *   protection across instances (ResponseCacheShared.ts, Shared/RedisCache.ts); without it, none of that runs.
 */
import { Cause, Clock, Duration, Effect, Exit, Layer, Option, Stream } from "effect"
import * as Spans from "../Observability/Spans.js"
import * as Shared from "./ResponseCacheShared.js"
import { type CacheStats, CacheStore, Flight } from "./ResponseCacheStore.js"

export type { CacheStats } from "./ResponseCacheStore.js"

/** Per call: serve a fresh hit or compute and store (`use`), always compute and store (`refresh`), or skip. */
export type CachePolicy = "use" | "refresh" | "bypass"

/** How a call was answered. `coalesced`: it waited for an identical in-flight miss. */
export type Lookup = "hit" | "miss" | "coalesced" | "refresh" | "bypass"

/** Bounds and freshness of the cache. */
export interface Options {
  readonly maxEntries: number
  readonly maxBytes: number
  readonly ttl: Duration.DurationInput
}

/** The defaults: 10,000 entries, 64 MiB, 10 minutes. */
export const defaultOptions: Options = { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, ttl: "10 minutes" }

/** A unary answer and how it was obtained. */
export interface Cached<A> {
  readonly value: A
  readonly lookup: Lookup
}

/** A stream answer (not yet run) and how it will be obtained. */
export interface CachedStream<A, E, R> {
  readonly lookup: Lookup
  readonly stream: Stream.Stream<A, E, R>
}

type Decision =
  | { readonly _tag: "Hit"; readonly value: unknown }
  | { readonly _tag: "Follow"; readonly flight: Flight }
  | { readonly _tag: "Lead"; readonly flight: Flight }

const unarySlot = (key: string) => `u|${key}`
const streamSlot = (key: string) => `s|${key}`

const storeNow = (store: CacheStore, slot: string, value: unknown) =>
  Effect.map(Clock.currentTimeMillis, (now) => store.store(slot, value, now))

/**
 * Hit, follow a flight, or lead a new one, in one synchronous step so no other fiber interleaves. A leader that
 * asks the shared level is counted once it knows how it was answered (ResponseCacheShared.ts).
 */
const decide = (store: CacheStore, slot: string, now: number, shared: boolean): Decision => {
  const hit = store.fresh(slot, now)
  if (Option.isSome(hit)) {
    store.count("hits")
    return { _tag: "Hit", value: hit.value }
  }
  const inFlight = store.flights.get(slot)
  if (inFlight !== undefined) return { _tag: "Follow", flight: inFlight }
  const flight = new Flight()
  store.flights.set(slot, flight)
  if (!shared) store.count("misses")
  return { _tag: "Lead", flight }
}

const interruptedOnly = (exit: Exit.Exit<unknown, unknown>): boolean =>
  Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)

/**
 * The leader's end at `now`: release the flight, store a success, tell the followers (None: start over); in the step
 * the leader's call ends.
 */
const settleAt = <A, E>(
  store: CacheStore,
  slot: string,
  flight: Flight,
  exit: Exit.Exit<A, E>,
  now: number
): Exit.Exit<Cached<A>, E> => {
  if (store.flights.get(slot) === flight) store.flights.delete(slot)
  if (Exit.isSuccess(exit)) store.store(slot, exit.value, now)
  flight.done(interruptedOnly(exit) ? Option.none() : Option.some(exit))
  return Exit.map(exit, (value): Cached<A> => ({ value, lookup: "miss" }))
}

/** A follower's end: the leader's exit (same key, so same types), or start over if the leader was interrupted. */
const follow = <A, E, R>(
  level: Level<E>,
  slot: string,
  outcome: Option.Option<Exit.Exit<unknown, unknown>>,
  compute: Effect.Effect<A, E, R>
): Effect.Effect<Cached<A>, E, R> =>
  Option.match(outcome, {
    onNone: () => useUnary(level, slot, compute),
    onSome: (exit) => {
      level.store.count("coalesced")
      return Exit.map(exit as Exit.Exit<A, E>, (value): Cached<A> => ({ value, lookup: "coalesced" }))
    }
  })

/** The levels a unary lookup goes through: this process's store, and the shared one (with the call's bound). */
interface Level<E> {
  readonly store: CacheStore
  readonly shared: Shared.Shared | undefined
  readonly bound: Shared.Bound<E> | undefined
}

/** The `use` policy for unary calls: fresh hit, else single-flight compute (or the shared level) and store. */
const useUnary = <A, E, R>(
  level: Level<E>,
  slot: string,
  compute: Effect.Effect<A, E, R>
): Effect.Effect<Cached<A>, E, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.clockWith((clock): Effect.Effect<Cached<A>, E, R> => {
      const now = clock.unsafeCurrentTimeMillis()
      const { store, shared } = level
      const decision = decide(store, slot, now, shared !== undefined)
      switch (decision._tag) {
        case "Hit":
          return Effect.succeed({ value: decision.value as A, lookup: "hit" })
        case "Lead":
          return shared === undefined
            ? // settled in the step the call ends, with the clock at hand
              Effect.matchCauseEffect(restore(compute), {
                onFailure: (cause) =>
                  settleAt(store, slot, decision.flight, Exit.failCause(cause), clock.unsafeCurrentTimeMillis()),
                onSuccess: (value) =>
                  settleAt(store, slot, decision.flight, Exit.succeed(value), clock.unsafeCurrentTimeMillis())
              })
            : Shared.lead(shared, store, slot, decision.flight, compute, level.bound, restore)
        case "Follow":
          return Effect.flatMap(restore(decision.flight.wait()), (outcome) =>
            restore(follow(level, slot, outcome, compute))
          )
      }
    })
  )

const get = <A, E, R>(
  store: CacheStore,
  shared: Shared.Shared | undefined,
  key: string,
  policy: CachePolicy,
  compute: Effect.Effect<A, E, R>,
  bound: Shared.Bound<E> | undefined
): Effect.Effect<Cached<A>, E, R> => {
  const slot = unarySlot(key)
  const answer =
    (lookup: Lookup) =>
    (value: A): Cached<A> => ({ value, lookup })
  const run =
    policy === "use"
      ? useUnary({ store, shared, bound }, slot, compute)
      : policy === "refresh"
        ? Effect.sync(() => store.count("refreshes")).pipe(
            Effect.zipRight(
              Effect.tap(compute, (value) =>
                Effect.zipRight(storeNow(store, slot, value), Shared.put(shared, slot, value))
              )
            ),
            Effect.map(answer("refresh"))
          )
        : Effect.sync(() => store.count("bypasses")).pipe(Effect.zipRight(compute), Effect.map(answer("bypass")))
  // No span of its own (a span costs more than a lookup): the lookup is an attribute of the caller's span, when
  // spans are exported (Observability/Spans.ts).
  return Effect.withFiberRuntime((fiber) =>
    Spans.exported(fiber) ? Effect.tap(run, ({ lookup }) => Effect.annotateCurrentSpan("cache.lookup", lookup)) : run
  )
}

/**
 * Passes the chunks through while recording them, and stores the recording when the stream closes successfully
 * with a complete last chunk. Upstream is cut into one-element chunks before the recorder, so only elements the
 * consumer actually pulled are recorded: a consumer that stops at the done chunk (`takeUntil`) still stores, one
 * that stops earlier (`take`) does not, whatever the upstream chunking.
 */
const record = <A, E, R>(
  store: CacheStore,
  shared: Shared.Shared | undefined,
  slot: string,
  compute: Stream.Stream<A, E, R>,
  isComplete: (last: A) => boolean
): Stream.Stream<A, E, R> =>
  Stream.suspend(() => {
    const chunks: Array<A> = []
    const complete = () => chunks.length > 0 && isComplete(chunks[chunks.length - 1]!)
    return compute.pipe(
      Stream.rechunk(1),
      Stream.mapChunks((chunk) => {
        for (const a of chunk) chunks.push(a)
        return chunk
      }),
      Stream.ensuringWith((exit) =>
        Exit.isSuccess(exit) && complete()
          ? Effect.zipRight(storeNow(store, slot, chunks.slice()), Shared.put(shared, slot, chunks))
          : Effect.void
      )
    )
  })

const lookupStream = <A, E, R>(
  store: CacheStore,
  shared: Shared.Shared | undefined,
  key: string,
  policy: CachePolicy,
  compute: Stream.Stream<A, E, R>,
  isComplete: (last: A) => boolean
): Effect.Effect<CachedStream<A, E, R>> => {
  const slot = streamSlot(key)
  const decided = Effect.map(Clock.currentTimeMillis, (now): CachedStream<A, E, R> => {
    if (policy === "bypass") {
      store.count("bypasses")
      return { lookup: "bypass", stream: compute }
    }
    const hit = policy === "use" ? store.fresh(slot, now) : Option.none()
    return answered(hit, policy)
  })
  const answered = (hit: Option.Option<unknown>, policy: CachePolicy): CachedStream<A, E, R> => {
    store.count(Option.isSome(hit) ? "hits" : policy === "use" ? "misses" : "refreshes")
    return Option.isSome(hit)
      ? { lookup: "hit", stream: Stream.fromIterable(hit.value as ReadonlyArray<A>) }
      : { lookup: policy === "use" ? "miss" : "refresh", stream: record(store, shared, slot, compute, isComplete) }
  }
  // a local miss asks the shared level, if there is one
  const decidedShared =
    shared === undefined || policy !== "use"
      ? decided
      : Effect.flatMap(Clock.currentTimeMillis, (now) => {
          if (Option.isSome(store.fresh(slot, now))) return decided
          return Effect.map(Shared.streamEntry(shared, store, slot), (hit) => answered(hit, policy))
        })
  return Effect.tap(decidedShared, ({ lookup }) => Effect.annotateCurrentSpan("cache.lookup", lookup))
}

/** Builds a cache with the given options (missing ones take `defaultOptions`). */
export const make = (options: Partial<Options> = {}) =>
  Effect.gen(function* () {
    const { maxBytes, maxEntries, ttl } = { ...defaultOptions, ...options }
    const ttlMs = Duration.toMillis(Duration.decode(ttl))
    const store = new CacheStore(maxEntries, maxBytes, ttlMs)
    const shared = yield* Shared.make({ ttlMs, maxEntries, maxBytes })
    const lookup = <A, E, R>(
      key: string,
      policy: CachePolicy,
      compute: Stream.Stream<A, E, R>,
      done: (a: A) => boolean
    ) => lookupStream(store, shared, key, policy, compute, done)
    const locally = (slot: string) =>
      Effect.clockWith((clock) =>
        Effect.succeed(store.flights.has(slot) || Option.isSome(store.fresh(slot, clock.unsafeCurrentTimeMillis())))
      )
    return {
      /**
       * A unary answer through the cache, with how it was obtained. With a shared level, `bound` limits how long
       * the call waits for an identical call on another instance (its deadline) and says what it fails with then.
       */
      get: <A, E, R>(key: string, policy: CachePolicy, compute: Effect.Effect<A, E, R>, bound?: Shared.Bound<E>) =>
        get(store, shared, key, policy, compute, bound),
      /** A stream through the cache, and whether it is a hit (decided now; the stream runs later). */
      lookupStream: lookup,
      /** `lookupStream` without the lookup. */
      stream: <A, E, R>(key: string, policy: CachePolicy, compute: Stream.Stream<A, E, R>, done: (a: A) => boolean) =>
        Stream.unwrap(Effect.map(lookup(key, policy, compute, done), (result) => result.stream)),
      /**
       * Whether a `use` lookup of a key would be answered without a new upstream call now: a fresh entry, or (unary)
       * an identical call in flight to follow (here, or on another instance with a shared level). The engine's
       * admission skips the queue for these.
       */
      answersNow: (key: string, kind: "unary" | "stream" = "unary"): Effect.Effect<boolean> => {
        const slot = kind === "unary" ? unarySlot(key) : streamSlot(key)
        return shared === undefined
          ? locally(slot)
          : Effect.flatMap(locally(slot), (found) =>
              found ? Effect.succeed(true) : Shared.answersNow(shared, store, slot)
            )
      },
      /** The stored unary value, even if expired (for the fallback layer). */
      stale: <A>(key: string): Effect.Effect<Option.Option<A>> =>
        Effect.sync(() => store.stale(unarySlot(key)) as Option.Option<A>),
      /** The stored stream chunks, even if expired (for the fallback layer). */
      staleStream: <A>(key: string): Effect.Effect<Option.Option<ReadonlyArray<A>>> =>
        Effect.sync(() => store.stale(streamSlot(key)) as Option.Option<ReadonlyArray<A>>),
      /** Drops the unary and the stream entry of a key (here and in the shared level). */
      invalidate: (key: string): Effect.Effect<void> =>
        Effect.forEach(
          [unarySlot(key), streamSlot(key)],
          (slot) =>
            Effect.zipRight(
              Effect.sync(() => store.delete(slot)),
              shared?.remove(slot) ?? Effect.void
            ),
          { discard: true }
        ),
      /** Drops every entry of this process (counters are kept; the shared level keeps its entries). */
      clear: Effect.sync(() => store.clear()),
      /** The counters and the current size (of this process's level). */
      stats: Effect.sync((): CacheStats => store.stats())
    } as const
  })

/**
 * The response cache service; `Default` uses `defaultOptions`, `layer(options)` overrides them. With `Redis`
 * configured, the cache has a shared level (ResponseCacheShared.ts) for the life of the layer.
 */
export class ResponseCache extends Effect.Service<ResponseCache>()("sluice/ResponseCache", { scoped: make() }) {
  /** A layer with the given options (missing ones take `defaultOptions`). */
  static layer = (options: Partial<Options>): Layer.Layer<ResponseCache> =>
    Layer.scoped(ResponseCache, Effect.map(make(options), ResponseCache.make))
}
