/**
 * The shape of Sluice's config file (`sluice.yaml` or `sluice.json`; docs/configuration.md has a complete example).
 *
 * Choices:
 * - Every struct is exact: an unknown key is an error (a typo such as `slot:` must not be ignored silently), and
 *   the loader (ConfigFile.ts) names the key and its line.
 * - Scalar settings have an environment variable each (`envNames`), which overrides the file; the structured
 *   parts (backends, models, key defaults) have no environment form, except `OLLAMA_HOST` and `--ollama`, which
 *   replace the file's backend list when given.
 * - Secrets (API keys, OTLP headers) have no key here on purpose: they belong in the environment or an
 *   environment file, not in a file that is copied around and checked in.
 * - Durations are Effect's strings ("30 seconds", "10 minutes", "500 millis"), as the environment takes them.
 */
import { Duration, Option, Schema } from "effect"

/** An optional key that, when present, must hold a value (`undefined` is not one). */
const opt = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })

const Duration_ = Schema.String.pipe(
  Schema.filter((s) => Option.isSome(Duration.decodeUnknown(s)), {
    message: () => `a duration such as "30 seconds", "500 millis" or "10 minutes"`
  })
)
const Positive = Schema.Number.pipe(Schema.positive({ message: () => "a number above 0" }))
const Count = Schema.Int.pipe(Schema.positive({ message: () => "a whole number above 0" }))
const NonNegativeCount = Schema.Int.pipe(Schema.nonNegative({ message: () => "a whole number, 0 or more" }))
const Url = Schema.String.pipe(Schema.minLength(1, { message: () => "an Ollama address (host, host:port or a URL)" }))
const Names = Schema.Array(Schema.String.pipe(Schema.minLength(1)))

const Server = Schema.Struct({
  port: opt(Schema.Int.pipe(Schema.between(0, 65535))),
  host: opt(Schema.String),
  backend: opt(Schema.Literal("auto", "ollama", "simulator")),
  dataDir: opt(Schema.String),
  drainTimeout: opt(Duration_),
  maxBodyBytes: opt(Count),
  maxJsonDepth: opt(Count),
  batchConcurrency: opt(Count),
  publicRoutes: opt(Names)
})

/** The limits and client settings a backend may set, and `defaults:` may set for all of them. */
const perBackend = {
  requestsPerSecond: opt(Positive),
  tokensPerMinute: opt(Positive),
  connections: opt(Count),
  connectTimeout: opt(Duration_),
  headersTimeout: opt(Duration_),
  bodyTimeout: opt(Duration_)
}

/** Settings for every backend that does not set its own. */
const BackendDefaults = Schema.Struct({ slots: opt(Count), ...perBackend, keepAlive: opt(Duration_) })

const Breaker = Schema.Struct({
  consecutiveFailures: opt(Count),
  failureRatio: opt(Schema.Number.pipe(Schema.between(0, 1))),
  minimumVolume: opt(Count),
  window: opt(Duration_),
  openFor: opt(Duration_),
  maxOpenFor: opt(Duration_),
  backoffFactor: opt(Schema.Number.pipe(Schema.greaterThanOrEqualTo(1)))
})

export const Backend = Schema.Struct({
  url: Url,
  /** A fixed number of calls at once, or "adaptive" (learned from latency and 503s). */
  slots: opt(Schema.Union(Count, Schema.Literal("adaptive"))),
  /** Higher first: a call goes to the highest-priority backend that serves its model, then the least loaded. */
  priority: opt(Schema.Int),
  /** The models this backend serves (names or aliases); absent: whatever its /api/tags lists. */
  models: opt(Names),
  queueCapacity: opt(Count),
  ...perBackend,
  breaker: opt(Breaker)
})
export type Backend = typeof Backend.Type

/** `stale`, `{ model: name }` (the same request on another model) or `{ reply: text }`. */
const Fallback = Schema.Union(
  Schema.Literal("stale"),
  Schema.Struct({ model: Schema.String.pipe(Schema.minLength(1)) }),
  Schema.Struct({ reply: Schema.String })
)
export type Fallback = typeof Fallback.Type

export const Model = Schema.Struct({
  /** Other names clients may use for this model (e.g. "gpt-4o-mini" for OpenAI clients). */
  aliases: opt(Names),
  /** Tried in order when a call fails for good (after retries and every backend). */
  fallbacks: opt(Schema.Array(Fallback)),
  /** false: calls of this model bypass the response cache. */
  cache: opt(Schema.Boolean),
  /** The whole call at most, retries included (overrides `deadline`). */
  deadline: opt(Duration_)
})
export type Model = typeof Model.Type

const Limits = Schema.Struct({
  rpm: opt(Count),
  tpm: opt(Count),
  concurrency: opt(Count)
})

export const File = Schema.Struct({
  server: opt(Server),
  defaults: opt(BackendDefaults),
  backends: opt(Schema.Array(Backend)),
  models: opt(Schema.Record({ key: Schema.String, value: Model })),
  cache: opt(Schema.Struct({ ttl: opt(Duration_), maxEntries: opt(Count), maxBytes: opt(Count) })),
  retry: opt(Schema.Struct({ max: opt(NonNegativeCount) })),
  deadline: opt(Duration_),
  /** The limits `sluice keys create` gives a key when its flags give none. */
  keys: opt(Schema.Struct({ defaults: opt(Limits) })),
  health: opt(
    Schema.Struct({
      interval: opt(Duration_),
      timeout: opt(Duration_),
      requiredModels: opt(Names),
      requiredEmbedModels: opt(Names),
      maxHeapMb: opt(Positive),
      maxRssMb: opt(Positive),
      minFreeDiskMb: opt(Positive)
    })
  ),
  bus: opt(Schema.Struct({ persist: opt(Schema.Boolean), hubCapacity: opt(Count) })),
  telemetry: opt(
    Schema.Struct({
      logLevel: opt(Schema.Literal("trace", "debug", "info", "warn", "error", "fatal", "none")),
      logFormat: opt(Schema.Literal("json", "pretty", "auto")),
      otlpEndpoint: opt(Schema.String),
      serviceName: opt(Schema.String),
      disabled: opt(Schema.Boolean)
    })
  )
})
export type File = typeof File.Type

/** The environment variable of each scalar setting, by its path in the file; the environment wins over the file. */
export const envNames: ReadonlyArray<readonly [path: ReadonlyArray<string>, env: string]> = [
  [["server", "port"], "SLUICE_PORT"],
  [["server", "host"], "SLUICE_HOST"],
  [["server", "backend"], "SLUICE_BACKEND"],
  [["server", "dataDir"], "SLUICE_DATA_DIR"],
  [["server", "drainTimeout"], "SLUICE_DRAIN_TIMEOUT"],
  [["server", "maxBodyBytes"], "SLUICE_MAX_BODY_BYTES"],
  [["server", "maxJsonDepth"], "SLUICE_MAX_JSON_DEPTH"],
  [["server", "batchConcurrency"], "SLUICE_BATCH_CONCURRENCY"],
  [["server", "publicRoutes"], "SLUICE_PUBLIC_ROUTES"],
  [["defaults", "slots"], "SLUICE_BACKEND_SLOTS"],
  [["defaults", "requestsPerSecond"], "SLUICE_BACKEND_RPS"],
  [["defaults", "tokensPerMinute"], "SLUICE_BACKEND_TPM"],
  [["defaults", "connections"], "SLUICE_OLLAMA_CONNECTIONS"],
  [["defaults", "connectTimeout"], "SLUICE_OLLAMA_CONNECT_TIMEOUT"],
  [["defaults", "headersTimeout"], "SLUICE_OLLAMA_HEADERS_TIMEOUT"],
  [["defaults", "bodyTimeout"], "SLUICE_OLLAMA_BODY_TIMEOUT"],
  [["defaults", "keepAlive"], "SLUICE_OLLAMA_KEEP_ALIVE"],
  [["cache", "ttl"], "SLUICE_CACHE_TTL"],
  [["cache", "maxEntries"], "SLUICE_CACHE_MAX_ENTRIES"],
  [["cache", "maxBytes"], "SLUICE_CACHE_MAX_BYTES"],
  [["retry", "max"], "SLUICE_RETRY_MAX"],
  [["deadline"], "SLUICE_DEADLINE"],
  [["health", "interval"], "SLUICE_HEALTH_INTERVAL"],
  [["health", "timeout"], "SLUICE_HEALTH_TIMEOUT"],
  [["health", "requiredModels"], "SLUICE_REQUIRED_MODELS"],
  [["health", "requiredEmbedModels"], "SLUICE_REQUIRED_EMBED_MODELS"],
  [["health", "maxHeapMb"], "SLUICE_MAX_HEAP_MB"],
  [["health", "maxRssMb"], "SLUICE_MAX_RSS_MB"],
  [["health", "minFreeDiskMb"], "SLUICE_MIN_FREE_DISK_MB"],
  [["bus", "persist"], "SLUICE_BUS_PERSIST"],
  [["bus", "hubCapacity"], "SLUICE_BUS_HUB_CAPACITY"],
  [["telemetry", "logLevel"], "SLUICE_LOG_LEVEL"],
  [["telemetry", "logFormat"], "SLUICE_LOG_FORMAT"],
  [["telemetry", "otlpEndpoint"], "SLUICE_OTLP_ENDPOINT"],
  [["telemetry", "serviceName"], "OTEL_SERVICE_NAME"],
  [["telemetry", "disabled"], "OTEL_SDK_DISABLED"]
]
