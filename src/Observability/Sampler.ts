/**
 * Reads the engine's own stats into gauges and counters: a scoped fiber samples every few seconds, and
 * `/metrics` samples once more before each scrape, so a scrape is never staler than the request.
 *
 * Dependencies point downward: this module declares the small shapes it reads (`Sources`), and the engine's
 * values already fit them (`Backends.all` is a `ReadonlyArray<BackendSource>`, `ResponseCache.stats` a
 * `CacheCounts` effect), so wiring is `Sampler.layer(Effect.map(..., (x) => ({ cache, backends })))` and
 * Observability never imports Llm.
 *
 * Counts the engine keeps cumulatively (cache hits, breaker trips) become counters by adding the difference
 * since the last sample; a semaphore serialises samples so two concurrent ones never count a difference twice.
 */
import { Context, Duration, Effect, Layer, Metric, Schedule } from "effect"
import type { Scope } from "effect"
import * as Labels from "./Labels.js"
import * as Metrics from "./Metrics.js"
import * as ProcessMetrics from "./ProcessMetrics.js"

/** A circuit breaker's report (fits `CircuitBreaker.Stats`). */
export interface BreakerStats {
  readonly state: "closed" | "half-open" | "open"
  readonly trips: number
  readonly rejections: number
  readonly transitions: number
}

/** A rate-limit bucket's report (fits `RateLimiter.Bucket.snapshot`). */
export interface BucketSnapshot {
  readonly requests: number
  readonly tokens: number | undefined
  readonly waiting: number
}

/** One backend as the sampler reads it (fits `Backends.Backend`). */
export interface BackendSource {
  readonly url: string
  /** The backend's scheduler slots: the current limit (configured or learned). */
  readonly slots: { readonly snapshot: Effect.Effect<{ readonly limit: number }> }
  readonly outstanding: Effect.Effect<number>
  readonly breaker: { readonly stats: Effect.Effect<BreakerStats> }
  readonly bucket: { readonly snapshot: Effect.Effect<BucketSnapshot> }
  readonly models?: Effect.Effect<ReadonlySet<string> | undefined>
}

/** The response cache's counters (fits `ResponseCache.CacheStats`). */
export interface CacheCounts {
  readonly hits: number
  readonly misses: number
  readonly staleServed: number
  readonly evictions: number
  readonly coalesced: number
  readonly refreshes: number
  readonly bypasses: number
  readonly entries: number
  readonly bytes: number
}

/** The scheduler's queue: calls waiting per priority, and its capacity. */
export interface QueueSnapshot {
  readonly depth: Readonly<Record<string, number>>
  readonly capacity: number
}

/** What the sampler reads; every part is optional. */
export interface Sources {
  readonly cache?: Effect.Effect<CacheCounts>
  readonly backends?: ReadonlyArray<BackendSource>
  readonly queue?: Effect.Effect<QueueSnapshot>
  /** Further samplers (agents' memory, ...), run with the others. */
  readonly extra?: ReadonlyArray<Effect.Effect<void>>
}

export interface Options {
  /** How often the background fiber samples; default 5 seconds. */
  readonly every?: Duration.DurationInput
}

export class Sampler extends Context.Tag("sluice/Sampler")<
  Sampler,
  {
    /** Samples every source now. */
    readonly sample: Effect.Effect<void>
  }
>() {}

const stateValue = { closed: 0, "half-open": 1, open: 2 } as const

const cacheCounters = [
  ["hits", Metrics.cacheHits],
  ["misses", Metrics.cacheMisses],
  ["coalesced", Metrics.cacheCoalesced],
  ["staleServed", Metrics.cacheStaleServed],
  ["evictions", Metrics.cacheEvictions],
  ["refreshes", Metrics.cacheRefreshes],
  ["bypasses", Metrics.cacheBypasses]
] as const

/** Turns cumulative counts into counter increments. */
const makeDeltas = () => {
  const last = new Map<string, number>()
  return (id: string, metric: Metric.Metric.Counter<number>, value: number): Effect.Effect<void> => {
    const before = last.get(id) ?? 0
    last.set(id, Math.max(before, value))
    return value > before ? Metric.incrementBy(metric, value - before) : Effect.void
  }
}

type Advance = ReturnType<typeof makeDeltas>

const sampleCache = (read: Effect.Effect<CacheCounts>, advance: Advance) =>
  Effect.flatMap(read, (s) =>
    Effect.all(
      [
        ...cacheCounters.map(([field, metric]) => advance(`cache.${field}`, metric, s[field])),
        Metric.set(Metrics.cacheEntries, s.entries),
        Metric.set(Metrics.cacheBytes, s.bytes)
      ],
      { discard: true }
    )
  )

const sampleBackend = (b: BackendSource, advance: Advance) =>
  Effect.gen(function* () {
    const backend = Labels.backend(b.url)
    const at = { backend }
    const breaker = yield* b.breaker.stats
    const bucket = yield* b.bucket.snapshot
    const models = b.models === undefined ? undefined : yield* b.models
    const { limit } = yield* b.slots.snapshot
    yield* Effect.all(
      [
        Metric.set(Labels.tag(Metrics.backendInFlight, at), yield* b.outstanding),
        Metric.set(Labels.tag(Metrics.backendSlots, at), limit),
        Metric.set(Labels.tag(Metrics.schedulerLimit, at), limit),
        models === undefined ? Effect.void : Metric.set(Labels.tag(Metrics.backendModels, at), models.size),
        Metric.set(Labels.tag(Metrics.breakerState, at), stateValue[breaker.state]),
        advance(`trips.${backend}`, Labels.tag(Metrics.breakerTrips, at), breaker.trips),
        advance(`rejections.${backend}`, Labels.tag(Metrics.breakerRejections, at), breaker.rejections),
        advance(`transitions.${backend}`, Labels.tag(Metrics.breakerTransitions, at), breaker.transitions),
        Metric.set(Labels.tag(Metrics.rateLimitWaiting, at), bucket.waiting),
        Metric.set(Labels.tag(Metrics.rateLimitAvailable, at), bucket.requests)
      ],
      { discard: true }
    )
  })

const sampleQueue = (read: Effect.Effect<QueueSnapshot>) =>
  Effect.flatMap(read, (q) =>
    Effect.zipRight(
      Metric.set(Metrics.queueCapacity, q.capacity),
      Effect.forEach(
        Object.entries(q.depth),
        ([priority, depth]) => Metric.set(Labels.tag(Metrics.queueDepth, { priority }), depth),
        { discard: true }
      )
    )
  )

/** The sampler over `sources`, with its background fiber and the event loop monitor in the scope. */
export const make = (sources: Sources, options: Options = {}): Effect.Effect<Sampler["Type"], never, Scope.Scope> =>
  Effect.gen(function* () {
    const processSample = yield* ProcessMetrics.make
    const advance = makeDeltas()
    const lock = yield* Effect.makeSemaphore(1)
    const parts: Array<Effect.Effect<void>> = [processSample]
    if (sources.cache !== undefined) parts.push(sampleCache(sources.cache, advance))
    for (const b of sources.backends ?? []) parts.push(sampleBackend(b, advance))
    if (sources.queue !== undefined) parts.push(sampleQueue(sources.queue))
    parts.push(...(sources.extra ?? []))
    const sample = lock.withPermits(1)(Effect.all(parts, { discard: true }))
    yield* sample
    yield* sample.pipe(Effect.repeat(Schedule.spaced(options.every ?? Duration.seconds(5))), Effect.forkScoped)
    return { sample } as const
  })

/** The sampler, with its sources read from the context (e.g. `Backends` and `ResponseCache`). */
export const layer = <E, R>(sources: Effect.Effect<Sources, E, R>, options?: Options): Layer.Layer<Sampler, E, R> =>
  Layer.scoped(
    Sampler,
    Effect.flatMap(sources, (s) => make(s, options))
  )

/** Samples now if a `Sampler` is provided, else only the process (the `/metrics` route calls this). */
export const sampleNow: Effect.Effect<void> = Effect.flatMap(Effect.serviceOption(Sampler), (sampler) =>
  sampler._tag === "Some" ? sampler.value.sample : ProcessMetrics.sample()
)
