/**
 * Typed helpers the engine, the gateway, the lifecycle and the agents call to move the metrics of
 * `Metrics.ts`. Each takes plain values (names, counts, milliseconds), bounds its labels (`Labels.ts`) and
 * returns an `Effect<void>` that never fails, so a call site is one `Effect.tap`.
 *
 * Nothing here reads prompt or completion text: only names, counts and times cross this boundary.
 * The Effect/Stream combinators that time calls for you are in `Track.ts`; gauges read from the engine's own
 * stats are set by `Sampler.ts`.
 */
import { Duration, Effect, FiberRef, Metric, type MetricLabel, ModuleVersion } from "effect"
import * as Labels from "./Labels.js"
import * as Metrics from "./Metrics.js"

/** How an engine call ended ("interrupted": the caller went away, e.g. a client disconnected). */
export type Outcome = "ok" | "fallback" | "error" | "interrupted"

/** One engine call (per `Llm` call, cache hits included). */
export interface RequestSample {
  readonly model: string
  /** The engine method: "chat", "generate", "embed". */
  readonly endpoint: string
  readonly priority?: string | undefined
  readonly outcome: Outcome
  readonly durationMs: number
}

/**
 * Runs `update` with the fiber's metric labels (`Effect.tagMetrics`), as `Metric.update` does, in one step: the
 * per-call recorders below update several metrics at once on the hot path, where an Effect per update showed
 * (bench/overhead).
 */
const updating = (update: (extraTags: ReadonlyArray<MetricLabel.MetricLabel>) => void): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    update(fiber.getFiberRef(FiberRef.currentMetricLabels))
    return Effect.void
  })

/**
 * Counts and times an engine call. Synchronous, with the fiber's metric labels passed in, for a caller that records
 * in one step (Track.request); `recordRequest` is the Effect.
 */
export const requestEnded = (s: RequestSample, extra: ReadonlyArray<MetricLabel.MetricLabel>): void => {
  const model = Labels.model(s.model)
  Labels.tag(Metrics.requests, {
    model,
    endpoint: s.endpoint,
    priority: s.priority ?? "normal",
    outcome: s.outcome
  }).unsafeUpdate(1, extra)
  Labels.tag(Metrics.requestDuration, { model, endpoint: s.endpoint, outcome: s.outcome }).unsafeUpdate(
    Duration.millis(s.durationMs),
    extra
  )
}

/** Counts and times an engine call. */
export const recordRequest = (s: RequestSample): Effect.Effect<void> => updating((extra) => requestEnded(s, extra))

/** One attempt on a backend, with what the answer reported. */
export interface UpstreamSample {
  readonly backend: string
  readonly model: string
  readonly endpoint: string
  /** "ok", or the error's tag ("TimeoutError", "ServerBusy", ...). */
  readonly outcome: string
  readonly durationMs: number
  /** Prompt tokens (Ollama's `prompt_eval_count`). */
  readonly tokensIn?: number | undefined
  /** Completion tokens (Ollama's `eval_count`). */
  readonly tokensOut?: number | undefined
  /** Ollama's `eval_duration` in nanoseconds: the decode time behind `tokensOut`. */
  readonly evalDurationNs?: number | undefined
  /** Streams: time from sending to the first chunk. */
  readonly firstTokenMs?: number | undefined
  /** Streams: chunks received (for the mean inter-token gap). */
  readonly chunks?: number | undefined
}

const positive = (n: number | undefined): n is number => n !== undefined && Number.isFinite(n) && n > 0

/** Decode speed: from Ollama's own eval timing when present, else from the stream's timing. */
const speedOf = (s: UpstreamSample): number | undefined => {
  if (!positive(s.tokensOut)) return undefined
  if (positive(s.evalDurationNs)) return s.tokensOut / (s.evalDurationNs / 1e9)
  const decodeMs = s.durationMs - (s.firstTokenMs ?? 0)
  return decodeMs > 0 && s.firstTokenMs !== undefined ? s.tokensOut / (decodeMs / 1000) : undefined
}

/**
 * Counts and times one backend attempt, its tokens, its first token and its decode speed. Synchronous, as
 * `requestEnded`; `recordUpstream` is the Effect.
 */
export const upstreamEnded = (s: UpstreamSample, extra: ReadonlyArray<MetricLabel.MetricLabel>): void => {
  const backend = Labels.backend(s.backend)
  const model = Labels.model(s.model)
  const where = { backend, model }
  // spelled out, not spread (Track.ts `upstream` says why)
  Labels.tag(Metrics.upstreamRequests, { backend, model, endpoint: s.endpoint, outcome: s.outcome }).unsafeUpdate(
    1,
    extra
  )
  Labels.tag(Metrics.upstreamDuration, { backend, endpoint: s.endpoint }).unsafeUpdate(
    Duration.millis(s.durationMs),
    extra
  )
  if (positive(s.tokensIn)) Labels.tag(Metrics.tokensIn, where).unsafeUpdate(s.tokensIn, extra)
  if (positive(s.tokensOut)) Labels.tag(Metrics.tokensOut, where).unsafeUpdate(s.tokensOut, extra)
  if (s.firstTokenMs !== undefined) {
    Labels.tag(Metrics.timeToFirstToken, where).unsafeUpdate(Duration.millis(s.firstTokenMs), extra)
    if (positive(s.chunks) && s.chunks > 1) {
      const gapMs = Math.max(0, (s.durationMs - s.firstTokenMs) / (s.chunks - 1))
      Labels.tag(Metrics.interTokenLatency, where).unsafeUpdate(Duration.millis(gapMs), extra)
    }
  }
  const speed = speedOf(s)
  if (speed !== undefined) Labels.tag(Metrics.tokensPerSecond, where).unsafeUpdate(speed, extra)
}

/** Counts and times one backend attempt, its tokens, its first token and its decode speed. */
export const recordUpstream = (s: UpstreamSample): Effect.Effect<void> => updating((extra) => upstreamEnded(s, extra))

/** A retry, by the error kind that caused it (fits `Retry.Options.onRetry` after a partial application). */
export const recordRetry = (endpoint: string, error: unknown): Effect.Effect<void> =>
  Metric.increment(Labels.tag(Metrics.retries, { endpoint, kind: Labels.kind(error) }))

/** A hedged attempt started (Llm/Hedge.ts). */
export const recordHedge: Effect.Effect<void> = Metric.increment(Metrics.hedges)

/** A call re-queued after 503 busy (Llm/Retry.ts `requeue`). */
export const recordRequeue: Effect.Effect<void> = Metric.increment(Metrics.requeues)

/** A failed engine call, by error kind (the error's `_tag`). */
export const recordError = (endpoint: string, error: unknown): Effect.Effect<void> =>
  Metric.increment(Labels.tag(Metrics.errors, { endpoint, kind: Labels.kind(error) }))

/** A call answered by a fallback; `served` is `Fallback.Served` ("primary" is ignored). */
export const recordFallback = (endpoint: string, served: string): Effect.Effect<void> =>
  served === "primary"
    ? Effect.void
    : Metric.increment(Labels.tag(Metrics.fallbacks, { endpoint, strategy: Labels.strategy(served) }))

/**
 * A budget that ran out (pass the `BudgetExceeded` error, or anything with its `limit`). Counted where budgets
 * run out, once: as the `onExhausted` hook of `Budget.scopedWith` and tapped on `Budget.reserveCall`.
 */
export const recordBudgetExhausted = (error: { readonly limit: string }): Effect.Effect<void> =>
  Metric.increment(Labels.tag(Metrics.budgetExhausted, { limit: error.limit }))

/** The size of one batch sent upstream. */
export const recordBatch = (endpoint: string, size: number): Effect.Effect<void> =>
  Metric.update(Labels.tag(Metrics.batchSize, { endpoint }), size)

/**
 * Rate-limit observers for one backend's bucket, in the shape of `RateLimiter.Events`:
 * `RateLimiter.makeBucketWith(url, limits, Recorders.rateLimitEvents(url))`.
 */
export const rateLimitEvents = (backend: string) => {
  const b = Labels.backend(backend)
  return {
    waited: Metric.increment(Labels.tag(Metrics.rateLimitWaits, { backend: b })),
    rejected: (limit: string) => Metric.increment(Labels.tag(Metrics.rateLimitRejections, { backend: b, limit }))
  } as const
}

/**
 * A call that waited in the scheduler's queue (recorded when it leaves the queue). Synchronous, as `requestEnded`;
 * `recordQueueWait` is the Effect.
 */
export const queueWaitEnded = (priority: string, waitMs: number, extra: ReadonlyArray<MetricLabel.MetricLabel>) =>
  Labels.tag(Metrics.queueWait, { priority }).unsafeUpdate(Duration.millis(waitMs), extra)

/** A call that waited in the scheduler's queue (recorded when it leaves the queue). */
export const recordQueueWait = (priority: string, waitMs: number): Effect.Effect<void> =>
  updating((extra) => queueWaitEnded(priority, waitMs, extra))

/** A call refused with `QueueFull`. */
export const recordQueueRejection = (priority: string): Effect.Effect<void> =>
  Metric.increment(Labels.tag(Metrics.queueRejections, { priority }))

// ---- gateway ------------------------------------------------------------------------------------------------

/** One gateway request; `route` is the route pattern (never the raw URL). */
export interface HttpSample {
  readonly route: string
  readonly method: string
  readonly status: number
  readonly durationMs: number
}

/**
 * One gateway request ended: one less in flight (`httpStarted`), counted and timed. Synchronous, with the fiber's
 * metric labels passed in, for a middleware that runs as one step (Http/Front.ts); `recordHttp` is the Effect.
 */
export const httpEnded = (s: HttpSample, extra: ReadonlyArray<MetricLabel.MetricLabel>): void => {
  Metrics.httpInFlight.unsafeModify(-1, extra)
  Labels.tag(Metrics.httpRequests, { route: s.route, method: s.method, status: String(s.status) }).unsafeUpdate(
    1,
    extra
  )
  Labels.tag(Metrics.httpDuration, { route: s.route, method: s.method }).unsafeUpdate(
    Duration.millis(s.durationMs),
    extra
  )
}

/** A gateway request began: one more in flight, until its `httpEnded` (synchronous, as `httpEnded`). */
export const httpStarted = (extra: ReadonlyArray<MetricLabel.MetricLabel>): void =>
  Metrics.httpInFlight.unsafeModify(1, extra)

/** One gateway request ended: one less in flight (`recordHttpStart`), counted and timed. */
export const recordHttp = (s: HttpSample): Effect.Effect<void> => updating((extra) => httpEnded(s, extra))

/** A gateway request began: one more in flight, until its `recordHttp`. */
export const recordHttpStart: Effect.Effect<void> = updating(httpStarted)

/** A request refused by authentication: "missing", "invalid", "forbidden", ... */
export const recordAuthFailure = (reason: string): Effect.Effect<void> =>
  Metric.increment(Labels.tag(Metrics.authFailures, { reason }))

// ---- health and lifecycle -----------------------------------------------------------------------------------

export type Health = "ok" | "degraded" | "down"

const healthValue: Record<Health, number> = { ok: 2, degraded: 1, down: 0 }

/** The health of one component ("backends", "database", "breakers", "scheduler", "process"). */
export const setHealth = (component: string, status: Health): Effect.Effect<void> =>
  Metric.set(Labels.tag(Metrics.healthStatus, { component }), healthValue[status])

export const setReady = (isReady: boolean): Effect.Effect<void> => Metric.set(Metrics.ready, isReady ? 1 : 0)

export const setBackendUp = (backend: string, up: boolean): Effect.Effect<void> =>
  Metric.set(Labels.tag(Metrics.backendUp, { backend: Labels.backend(backend) }), up ? 1 : 0)

export const setSchedulerLimit = (backend: string, limit: number): Effect.Effect<void> =>
  Metric.set(Labels.tag(Metrics.schedulerLimit, { backend: Labels.backend(backend) }), limit)

/** The result of one named startup check; `severity` is "fatal" or "warning". */
export const recordStartupCheck = (check: string, severity: string, passed: boolean): Effect.Effect<void> =>
  Metric.set(Labels.tag(Metrics.startupCheck, { check, severity }), passed ? 1 : 0)

export const recordStartup = (durationMs: number): Effect.Effect<void> =>
  Metric.set(Metrics.startupDuration, durationMs / 1000)

/** How the last shutdown drain went. */
export const recordShutdown = (drainMs: number, abandoned: number): Effect.Effect<void> =>
  Effect.zipRight(Metric.set(Metrics.shutdownDrain, drainMs / 1000), Metric.set(Metrics.shutdownAbandoned, abandoned))

/** Sets `sluice_build_info{version,node,effect} 1` (`version` is Sluice's). */
export const recordBuildInfo = (version: string): Effect.Effect<void> =>
  Metric.set(
    Labels.tag(Metrics.buildInfo, { version, node: process.version, effect: ModuleVersion.getCurrentVersion() }),
    1
  )

// ---- agents and the bus (`agent` is an agent definition's name, never an instance id) -------------------------

export const recordEpisode = (agent: string, outcome: string, durationMs: number): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.increment(Labels.tag(Metrics.agentEpisodes, { agent, outcome })),
    Metric.update(Labels.tag(Metrics.agentEpisodeDuration, { agent }), Duration.millis(durationMs))
  )

export const recordTick = (agent: string, outcome: string, durationMs: number): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.increment(Labels.tag(Metrics.agentTicks, { agent, outcome })),
    Metric.update(Labels.tag(Metrics.agentTickDuration, { agent }), Duration.millis(durationMs))
  )

export const setAgentsActive = (agent: string, count: number): Effect.Effect<void> =>
  Metric.set(Labels.tag(Metrics.agentsActive, { agent }), count)

export const setAgentMemory = (agent: string, entries: number, bytes: number): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.set(Labels.tag(Metrics.agentMemoryEntries, { agent }), entries),
    Metric.set(Labels.tag(Metrics.agentMemoryBytes, { agent }), bytes)
  )

export const recordMemoryEvictions = (agent: string, count = 1): Effect.Effect<void> =>
  Metric.incrementBy(Labels.tag(Metrics.agentMemoryEvictions, { agent }), count)

export const recordBusPublish = (topic: string): Effect.Effect<void> =>
  Metric.increment(Labels.tag(Metrics.busPublishes, { topic }))

export const recordHandlerError = (topic: string): Effect.Effect<void> =>
  Metric.increment(Labels.tag(Metrics.busHandlerErrors, { topic }))

export const recordDeadLetter = (topic: string): Effect.Effect<void> =>
  Metric.increment(Labels.tag(Metrics.busDeadLetters, { topic }))
