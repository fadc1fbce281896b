/**
 * Every Sluice metric, declared once (ARCHITECTURE.md §8). Names start with `sluice_`; labels are bounded sets
 * (model, backend, endpoint, outcome or error kind, priority, route, status, component, topic, agent definition),
 * never prompt text, API keys or per-request ids. docs/metrics.md has one row per metric, and a test checks
 * that the two lists agree (`catalog` below is that list; `InitialSamples.ts` reads it too, to give every metric
 * without labels a sample from the gateway's start).
 *
 * Choices:
 * - Counters are made with `incremental: true`, so they render as Prometheus `counter`s (reference pitfall 19).
 * - Durations are histograms in seconds whose input is a `Duration`, so `Metric.trackDuration` works on them
 *   (pitfall 7) and the helpers in `Recorders.ts` pass `Duration.millis(ms)`.
 * - State is a gauge sampled from the engine's own stats by `Sampler.ts` (cache, breakers, buckets, in-flight).
 * - Counts the engine already keeps cumulatively (cache hits, breaker trips) are turned into counters by the
 *   sampler adding the difference since its last look, so they stay `counter`s without a hook in the engine.
 * Apply labels with the data-first `Metric.tagged(metric, k, v)` or `Labels.tag` (pitfall 8).
 */
import { Duration, Metric, MetricBoundaries } from "effect"

/** What a metric is in the Prometheus text. */
export type Kind = "counter" | "gauge" | "histogram"

/**
 * A counter, gauge or histogram declared here (for a duration, the histogram in seconds behind its `Duration`
 * input). The key type is `any`: Effect's `Metric` is invariant in it, and the catalog holds all three kinds.
 */
export type Instrument = Metric.Metric<any, number, unknown>

/** One declared metric: its name, kind, label names, help text, and the metric itself. */
export interface Declared {
  readonly name: string
  readonly kind: Kind
  readonly labels: ReadonlyArray<string>
  readonly help: string
  readonly metric: Instrument
}

const declared: Array<Declared> = []

const declare = <M extends Instrument>(
  name: string,
  kind: Kind,
  help: string,
  labels: ReadonlyArray<string>,
  metric: M
): M => {
  if (declared.some((d) => d.name === name)) throw new Error(`metric ${name} is declared twice`)
  declared.push({ name, kind, labels, help, metric })
  return metric
}

const counter = (name: string, help: string, labels: ReadonlyArray<string> = []) =>
  declare(name, "counter", help, labels, Metric.counter(name, { description: help, incremental: true }))

const gauge = (name: string, help: string, labels: ReadonlyArray<string> = []) =>
  declare(name, "gauge", help, labels, Metric.gauge(name, { description: help }))

const histogram = (name: string, help: string, boundaries: ReadonlyArray<number>, labels: ReadonlyArray<string>) =>
  declare(name, "histogram", help, labels, Metric.histogram(name, MetricBoundaries.fromIterable(boundaries), help))

/** A histogram in seconds that takes a `Duration` (for `Metric.trackDuration`). */
const seconds = (name: string, help: string, boundaries: ReadonlyArray<number>, labels: ReadonlyArray<string>) =>
  Metric.mapInput(histogram(name, help, boundaries, labels), (d: Duration.Duration) => Duration.toSeconds(d))

/** Bucket boundaries, in one place. */
export const boundaries = {
  /** Request and stage durations, 5 ms to 2 minutes. */
  duration: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  /** Gaps between tokens of a stream. */
  interToken: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1],
  /** Decode speed. */
  tokensPerSecond: [1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 1000],
  /** Requests per upstream batch. */
  batchSize: [1, 2, 4, 8, 16, 32, 64, 128, 256],
  /** Waiting in the scheduler's queue. */
  queueWait: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  /** Whole agent episodes. */
  episode: [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600]
} as const

// ---- engine calls --------------------------------------------------------------------------------------------

export const requests = counter(
  "sluice_llm_requests_total",
  "Engine calls (library, gateway, agents) by how they ended: ok, fallback, error or interrupted.",
  ["model", "endpoint", "priority", "outcome"]
)
export const requestDuration = seconds(
  "sluice_llm_request_duration_seconds",
  "Whole engine call time, cache, retries and fallbacks included.",
  boundaries.duration,
  ["model", "endpoint", "outcome"]
)
export const upstreamRequests = counter(
  "sluice_llm_upstream_requests_total",
  "Attempts sent to a backend, by outcome (ok or the error kind).",
  ["backend", "model", "endpoint", "outcome"]
)
export const upstreamDuration = seconds(
  "sluice_llm_upstream_duration_seconds",
  "Time of one attempt on a backend, until its last byte.",
  boundaries.duration,
  ["backend", "endpoint"]
)
export const timeToFirstToken = seconds(
  "sluice_llm_time_to_first_token_seconds",
  "Time from sending a streamed attempt to its first chunk.",
  boundaries.duration,
  ["backend", "model"]
)
export const interTokenLatency = seconds(
  "sluice_llm_inter_token_latency_seconds",
  "Mean gap between chunks of one stream (one observation per stream).",
  boundaries.interToken,
  ["backend", "model"]
)
export const tokensIn = counter("sluice_llm_tokens_in_total", "Prompt tokens evaluated by backends.", [
  "backend",
  "model"
])
export const tokensOut = counter("sluice_llm_tokens_out_total", "Completion tokens generated by backends.", [
  "backend",
  "model"
])
export const tokensPerSecond = histogram(
  "sluice_llm_tokens_per_second",
  "Decode speed of one answer (Ollama's eval_count / eval_duration when present).",
  boundaries.tokensPerSecond,
  ["backend", "model"]
)
export const retries = counter("sluice_llm_retries_total", "Retries, by the error kind that caused them.", [
  "endpoint",
  "kind"
])
export const hedges = counter(
  "sluice_llm_hedges_total",
  "Hedged attempts: a second attempt started beside one that ran far longer than usual (Hedge.ts).",
  []
)
export const requeues = counter(
  "sluice_llm_busy_requeues_total",
  "Calls put back in their backend's line after a 503 server busy (backpressure, no retry spent).",
  []
)
export const errors = counter("sluice_llm_errors_total", "Engine calls that failed, by error kind.", [
  "endpoint",
  "kind"
])
export const fallbacks = counter(
  "sluice_llm_fallbacks_total",
  "Calls answered by a fallback: stale, default or alternate.",
  ["endpoint", "strategy"]
)
export const batchSize = histogram(
  "sluice_batch_size",
  "Requests per batch sent upstream (embed batches, chatBatch).",
  boundaries.batchSize,
  ["endpoint"]
)
export const budgetExhausted = counter("sluice_budget_exhausted_total", "Budgets that ran out, by limit.", ["limit"])

// ---- backends -----------------------------------------------------------------------------------------------

export const backendUp = gauge("sluice_backend_up", "1 when the backend answered its last check, else 0.", ["backend"])
export const backendInFlight = gauge("sluice_backend_in_flight", "Calls in flight on the backend now.", ["backend"])
export const backendSlots = gauge("sluice_backend_slots", "Calls the backend may run at once (its slots).", ["backend"])
export const backendModels = gauge("sluice_backend_models", "Models the backend listed last time.", ["backend"])
export const schedulerLimit = gauge(
  "sluice_scheduler_limit",
  "The adaptive concurrency limit the scheduler uses for the backend.",
  ["backend"]
)

// ---- response cache -----------------------------------------------------------------------------------------

export const cacheHits = counter("sluice_cache_hits_total", "Lookups answered from a fresh cache entry.")
export const cacheMisses = counter("sluice_cache_misses_total", "Lookups that computed the answer.")
export const cacheCoalesced = counter(
  "sluice_cache_coalesced_total",
  "Lookups that joined an identical call already in flight."
)
export const cacheStaleServed = counter("sluice_cache_stale_served_total", "Expired entries served as a fallback.")
export const cacheEvictions = counter("sluice_cache_evictions_total", "Entries pushed out by the size limits.")
export const cacheRefreshes = counter("sluice_cache_refreshes_total", "Calls that recomputed and replaced an entry.")
export const cacheBypasses = counter("sluice_cache_bypasses_total", "Calls that skipped the cache.")
export const cacheEntries = gauge("sluice_cache_entries", "Entries in the cache now.")
export const cacheBytes = gauge("sluice_cache_bytes", "Bytes (UTF-8 JSON) held by the cache now.")

// ---- rate limits and circuit breakers -----------------------------------------------------------------------

export const rateLimitWaits = counter("sluice_ratelimit_waits_total", "Callers that had to wait for a token.", [
  "backend"
])
export const rateLimitRejections = counter(
  "sluice_ratelimit_rejections_total",
  "Callers refused with RateLimited, by the limit that refused them.",
  ["backend", "limit"]
)
export const rateLimitWaiting = gauge("sluice_ratelimit_waiting", "Callers waiting for a token now.", ["backend"])
export const rateLimitAvailable = gauge(
  "sluice_ratelimit_tokens_available",
  "Request tokens in the bucket now (+Inf when unlimited).",
  ["backend"]
)
export const breakerState = gauge("sluice_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", [
  "backend"
])
export const breakerTransitions = counter("sluice_breaker_transitions_total", "Breaker state changes.", ["backend"])
export const breakerTrips = counter("sluice_breaker_trips_total", "Times the breaker opened.", ["backend"])
export const breakerRejections = counter(
  "sluice_breaker_rejections_total",
  "Calls failed fast with CircuitOpen without touching the backend.",
  ["backend"]
)

// ---- scheduler queue ----------------------------------------------------------------------------------------

export const queueDepth = gauge("sluice_queue_depth", "Calls waiting in the scheduler's queue now.", ["priority"])
export const queueCapacity = gauge("sluice_queue_capacity", "Calls the scheduler's queue may hold.")
export const queueWait = seconds(
  "sluice_queue_wait_seconds",
  "Time a call waited in the queue before it ran.",
  boundaries.queueWait,
  ["priority"]
)
export const queueRejections = counter(
  "sluice_queue_rejections_total",
  "Calls refused with QueueFull because the queue was full.",
  ["priority"]
)

// ---- gateway ------------------------------------------------------------------------------------------------

export const httpRequests = counter("sluice_http_requests_total", "Gateway requests answered, by route and status.", [
  "route",
  "method",
  "status"
])
export const httpDuration = seconds(
  "sluice_http_request_duration_seconds",
  "Gateway request time, until the last byte of the body (streams included).",
  boundaries.duration,
  ["route", "method"]
)
export const httpInFlight = gauge("sluice_http_requests_in_flight", "Gateway requests being served now.")
export const authFailures = counter("sluice_auth_failures_total", "Requests refused by authentication.", ["reason"])

// ---- health and lifecycle -----------------------------------------------------------------------------------

export const healthStatus = gauge("sluice_health_status", "Health per component: 2 ok, 1 degraded, 0 down.", [
  "component"
])
export const ready = gauge("sluice_ready", "1 while Sluice accepts work (readiness), else 0.")
export const startupCheck = gauge("sluice_startup_check", "Startup checks: 1 passed, 0 failed.", ["check", "severity"])
export const startupDuration = gauge(
  "sluice_startup_duration_seconds",
  "Time from the process's start to serving (0 while starting)."
)
export const shutdownDrain = gauge("sluice_shutdown_drain_seconds", "How long the last shutdown drain took.")
export const shutdownAbandoned = gauge(
  "sluice_shutdown_abandoned",
  "Calls still running when the last drain deadline passed."
)
export const buildInfo = gauge("sluice_build_info", "Always 1; the labels say which Sluice, Node and Effect run.", [
  "version",
  "node",
  "effect"
])

// ---- shared stores (scale-out: PostgreSQL and Redis, docs/scale-out.md) ------------------------------------

export const sharedStoreUp = gauge(
  "sluice_shared_store_up",
  "Whether a shared store answers: 1 yes, 0 no (store: redis, postgres; absent when not configured).",
  ["store"]
)
export const redisErrors = counter(
  "sluice_redis_errors_total",
  "Redis commands that failed or timed out, by use; the call went on with the documented fallback.",
  ["use"]
)
export const redisFallbacks = counter(
  "sluice_redis_fallbacks_total",
  "Decisions taken locally (or refused, with SLUICE_REDIS_FALLBACK=closed) because Redis did not answer.",
  ["use"]
)
export const sharedCacheWaits = counter(
  "sluice_shared_cache_waits_total",
  "Calls that awaited an identical call in flight on another instance instead of repeating it, by outcome.",
  ["outcome"]
)
export const breakerGossip = counter(
  "sluice_breaker_gossip_total",
  "Breaker state changes shared through Redis, sent or received.",
  ["direction"]
)
export const episodeTakeovers = counter(
  "sluice_agent_episode_takeovers_total",
  "Episodes taken over from an instance whose lease expired."
)

// ---- agents and the bus -------------------------------------------------------------------------------------

export const agentEpisodes = counter("sluice_agent_episodes_total", "Agent episodes finished, by outcome.", [
  "agent",
  "outcome"
])
export const agentEpisodeDuration = seconds(
  "sluice_agent_episode_duration_seconds",
  "Length of an agent episode.",
  boundaries.episode,
  ["agent"]
)
export const agentTicks = counter("sluice_agent_ticks_total", "Agent ticks run, by outcome.", ["agent", "outcome"])
export const agentTickDuration = seconds(
  "sluice_agent_tick_duration_seconds",
  "Length of one agent tick.",
  boundaries.duration,
  ["agent"]
)
export const agentsActive = gauge("sluice_agents_active", "Agents running now.", ["agent"])
export const agentMemoryEntries = gauge("sluice_agent_memory_entries", "Entries in agents' memory now.", ["agent"])
export const agentMemoryBytes = gauge("sluice_agent_memory_bytes", "Bytes held by agents' memory now.", ["agent"])
export const agentMemoryEvictions = counter(
  "sluice_agent_memory_evictions_total",
  "Memory entries evicted (size limits or expiry).",
  ["agent"]
)
export const busPublishes = counter("sluice_bus_publishes_total", "Messages published on the bus.", ["topic"])
export const busHandlerErrors = counter("sluice_bus_handler_errors_total", "Bus handlers that failed.", ["topic"])
export const busDeadLetters = counter(
  "sluice_bus_dead_letters_total",
  "Messages moved to dead letters after their handler gave up.",
  ["topic"]
)

// ---- the Node process ---------------------------------------------------------------------------------------

export const processResident = gauge("sluice_process_resident_memory_bytes", "Resident set size.")
export const processHeapUsed = gauge("sluice_process_heap_used_bytes", "V8 heap in use.")
export const processHeapTotal = gauge("sluice_process_heap_total_bytes", "V8 heap reserved.")
export const processExternal = gauge("sluice_process_external_memory_bytes", "Memory of C++ objects bound to JS.")
export const processCpu = counter("sluice_process_cpu_seconds_total", "CPU time used, user and system.", ["mode"])
export const processEventLoopLag = gauge(
  "sluice_process_event_loop_lag_seconds",
  "Event loop delay since the previous sample (quantile 0.5, 0.99, 1 = max).",
  ["quantile"]
)
export const processUptime = gauge("sluice_process_uptime_seconds", "Seconds since the process started.")
export const processStartTime = gauge("sluice_process_start_time_seconds", "Process start, Unix time in seconds.")
export const processActiveResources = gauge(
  "sluice_process_active_resources",
  "Handles and requests keeping the event loop alive."
)

/** Every declared metric, in declaration order (the docs test checks docs/metrics.md against it). */
export const catalog: ReadonlyArray<Declared> = declared

/** Every declared metric name. */
export const all: ReadonlyArray<string> = declared.map((d) => d.name)
