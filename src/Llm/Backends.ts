/**
 * The Ollama servers Sluice serves in front of. Each backend has its own pooled client, circuit breaker,
 * rate-limit bucket and slots: the scheduler's bounded priority queue in front of the calls it may run at once.
 *
 * Choice (`candidates`): model-aware and health-aware, least outstanding requests first.
 * - Backends whose breaker is open are skipped (`isCallPermitted`).
 * - Backends known to serve the model (from `/api/tags`, refreshed in the background) come first; backends whose
 *   model list is unknown or stale follow, so a model pulled a moment ago still works. If no backend lists the
 *   model, every permitted backend is a candidate and Ollama's own 404 answers.
 * - A backend configured with `models` serves those only: it is never a candidate for another model (unless no
 *   backend at all may serve that model, so that the call still gets Ollama's own "not found").
 * - Then the higher `priority` (default 0), then the fewest calls in flight, then the configured order.
 * `slots` is a number (configured) or "adaptive" (the default: Ollama does not report its parallel slots, so
 * the limit is learned from latency and 503s; see Scheduler/AdaptiveLimit.ts). Either way Sluice never sends a
 * backend more than that; calls beyond it wait in the backend's priority queue (Scheduler/Slots.ts).
 */
import { Context, Duration, Effect, Either, Layer, Schedule } from "effect"
import * as Host from "../Ollama/Host.js"
import { OllamaClient } from "../Ollama/OllamaClient.js"
import { normalizeName } from "../Domain/ModelName.js"
import * as Recorders from "../Observability/Recorders.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as RateLimiter from "./RateLimiter.js"
import * as Slots from "./Scheduler/Slots.js"

export interface BackendConfig {
  /** An OLLAMA_HOST-style address. */
  readonly url: string
  /** Calls Sluice runs at once on this backend: a number, or "adaptive" (learned; the default). */
  readonly slots?: number | "adaptive"
  /** Calls waiting for a slot at most (default 1024). */
  readonly queueCapacity?: number
  readonly rateLimit?: RateLimiter.Limits
  readonly breaker?: CircuitBreaker.Options
  /** Keep-alive sockets in the client's pool. */
  readonly connections?: number
  /** Higher first among the backends that serve a model (default 0). */
  readonly priority?: number
  /** The models this backend serves, and no others; absent: whatever its /api/tags lists. */
  readonly models?: ReadonlyArray<string>
  /** The client's connect, headers and body timeouts for this backend (OllamaClient's defaults otherwise). */
  readonly connectTimeout?: Duration.DurationInput
  readonly headersTimeout?: Duration.DurationInput
  readonly bodyTimeout?: Duration.DurationInput
}

export interface Backend {
  readonly url: string
  readonly client: OllamaClient.Service
  readonly breaker: CircuitBreaker.Breaker
  readonly bucket: RateLimiter.Bucket
  readonly slots: Slots.Slots
  /**
   * Calls in flight on this backend right now, and the models it listed last time (normalised names; undefined
   * before its first answer). Plain fields, changed in one synchronous step each: the backend choice reads them on
   * every call (`candidates`), where an Effect per read showed (bench/overhead).
   */
  readonly state: { inFlight: number; models: ReadonlySet<string> | undefined }
  /** `state.inFlight`, for the sampler. */
  readonly outstanding: Effect.Effect<number>
  /** `Authorization: Basic` from `user:pw@` in the configured URL (for requests not made by `client`), if any. */
  readonly authorization: string | undefined
  /** The configured priority (higher first) and the models it was configured to serve, if any. */
  readonly priority: number
  readonly declared: ReadonlySet<string> | undefined
}

export interface Options {
  readonly backends: ReadonlyArray<BackendConfig>
  /** How often model lists are refreshed from `/api/tags`. */
  readonly refreshEvery?: Duration.DurationInput
}

export const defaults = {
  slots: "adaptive" as const,
  refreshEvery: Duration.seconds(30),
  rateLimit: { requestsPerSecond: Infinity }
}

const makeBackend = (config: BackendConfig) =>
  Effect.gen(function* () {
    // the pool must not be narrower than the configured slots, or undici would queue what the scheduler admitted
    const slots = config.slots ?? defaults.slots
    const state: Backend["state"] = { inFlight: 0, models: undefined }
    const connections = config.connections ?? (typeof slots === "number" ? Math.max(32, slots) : undefined)
    const layer = OllamaClient.layer({
      host: config.url,
      connections,
      connectTimeout: config.connectTimeout,
      headersTimeout: config.headersTimeout,
      bodyTimeout: config.bodyTimeout
    })
    const client = Context.get(yield* Layer.build(layer), OllamaClient)
    return {
      url: client.backend,
      client,
      breaker: yield* CircuitBreaker.make(client.backend, config.breaker),
      bucket: yield* RateLimiter.makeBucketWith(
        client.backend,
        config.rateLimit ?? defaults.rateLimit,
        Recorders.rateLimitEvents(client.backend)
      ),
      slots: yield* Slots.make({
        limit: config.slots ?? defaults.slots,
        ...(config.queueCapacity === undefined ? {} : { capacity: config.queueCapacity })
      }),
      state,
      outstanding: Effect.sync(() => state.inFlight),
      authorization: Either.match(Host.decodeHost(config.url), {
        onLeft: () => undefined,
        onRight: (url) => Host.splitCredentials(url).authorization
      }),
      priority: config.priority ?? 0,
      declared: config.models === undefined ? undefined : new Set(config.models.map(normalizeName))
    } satisfies Backend
  })

/** Reads a backend's model list; a failure leaves the last known list in place. */
const refreshOne = (backend: Backend) =>
  backend.client.list.pipe(
    Effect.flatMap((list) =>
      Effect.sync(() => {
        backend.state.models = new Set(list.models.map((m) => normalizeName(m.name)))
      })
    ),
    Effect.zipRight(Recorders.setBackendUp(backend.url, true)),
    Effect.catchAll((e) =>
      Effect.zipRight(
        Recorders.setBackendUp(backend.url, false),
        Effect.logDebug(`cannot list the models of ${backend.url}: ${e.message}`)
      )
    )
  )

interface Ranked {
  readonly backend: Backend
  readonly permitted: boolean
  readonly serves: number
  readonly load: number
}

const ranked = (backend: Backend, model: string, permitted: boolean): Ranked => {
  const models = backend.state.models
  const serves = models === undefined ? 1 : models.has(model) ? 0 : 2
  return { backend, permitted, serves, load: backend.state.inFlight }
}

const best = (list: ReadonlyArray<Ranked>): Array<Backend> =>
  list
    .filter((r) => r.permitted)
    .sort((a, b) => a.serves - b.serves || b.backend.priority - a.backend.priority || a.load - b.load)
    .map((r) => r.backend)

export class Backends extends Effect.Service<Backends>()("sluice/Backends", {
  scoped: (options: Options) =>
    Effect.gen(function* () {
      if (options.backends.length === 0) return yield* Effect.dieMessage("Backends: at least one backend is needed")
      const all = yield* Effect.forEach(options.backends, makeBackend)
      const refresh = Effect.forEach(all, refreshOne, { concurrency: "unbounded", discard: true })
      yield* refresh
      yield* refresh.pipe(
        Effect.repeat(Schedule.spaced(options.refreshEvery ?? defaults.refreshEvery)),
        Effect.forkScoped
      )

      const listFor = (name: string) => {
        const eligible = all.filter((b) => b.declared === undefined || b.declared.has(name))
        return eligible.length > 0 ? eligible : all
      }

      /** The backends to try for `model`, best first; open breakers and backends configured without it are left out. */
      const candidates = (model: string) => {
        const name = normalizeName(model)
        const list = listFor(name)
        // every breaker closed (the usual case): one synchronous step; else each breaker decides (it may half-open)
        if (list.every((b) => b.breaker.closedNow()))
          return Effect.sync(() => best(list.map((b) => ranked(b, name, true))))
        return Effect.map(
          Effect.forEach(list, (b) => Effect.map(b.breaker.isCallPermitted, (permitted) => ranked(b, name, permitted))),
          best
        )
      }

      /**
       * `candidates`, read now, when every breaker of the list is closed (the usual case); `undefined` otherwise,
       * when the breakers must decide (`candidates`). For a stage that chooses inside a step of its own, at run time.
       */
      const candidatesNow = (model: string): ReadonlyArray<Backend> | undefined => {
        const name = normalizeName(model)
        const list = listFor(name)
        return list.every((b) => b.breaker.closedNow()) ? best(list.map((b) => ranked(b, name, true))) : undefined
      }

      /**
       * Counts `effect` as outstanding on `backend` while it runs: `Effect.acquireUseRelease` of a counter, in one
       * region whose first step counts (every attempt passes here; the acquire and release effects of their own were
       * ~6 runtime steps per call).
       */
      const track =
        (backend: Backend) =>
        <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          Effect.uninterruptibleMask((restore) => {
            backend.state.inFlight++
            return Effect.matchCauseEffect(restore(effect), {
              onFailure: (cause) => {
                backend.state.inFlight--
                return Effect.failCause(cause)
              },
              onSuccess: (a) => {
                backend.state.inFlight--
                return Effect.succeed(a)
              }
            })
          })

      return { all, candidates, candidatesNow, refresh, track } as const
    })
}) {}
