/**
 * Sluice's configuration: every setting, its environment variable and its default, in one place.
 * Command-line flags override the environment; the environment overrides these defaults.
 */
import { Config, Duration, Option } from "effect"
import type { BackendConfig } from "./Llm/Backends.js"
import type { Options as EngineOptions } from "./Llm/Engine.js"

export type BackendMode = "auto" | "ollama" | "simulator"

/** The defaults, visible in one place. */
export const defaults = {
  port: 11435,
  host: "127.0.0.1",
  ollama: "http://127.0.0.1:11434",
  simulatorPort: 11434,
  dataDir: "./data"
} as const

/**
 * Which backend `serve` uses. `auto` serves in front of Ollama when it answers, else in front of the built-in
 * simulator (and says so); `ollama` refuses that fallback; `simulator` forces it. In production
 * (NODE_ENV=production) the default is `ollama`: a production gateway must never answer with simulated text.
 */
export const backendMode: Config.Config<BackendMode> = Config.literal(
  "auto",
  "ollama",
  "simulator"
)("SLUICE_BACKEND").pipe(
  Config.orElse(() =>
    Config.string("NODE_ENV").pipe(
      Config.map((env): BackendMode => (env === "production" ? "ollama" : "auto")),
      Config.withDefault<BackendMode>("auto")
    )
  )
)

/** `SLUICE_DATA_DIR`: the database, archives and backups live here. */
export const dataDir = Config.string("SLUICE_DATA_DIR").pipe(Config.withDefault(defaults.dataDir))

/** `SLUICE_DRAIN_TIMEOUT`: how long requests in flight may take to finish at shutdown (default 30 seconds). */
export const drainTimeout = Config.duration("SLUICE_DRAIN_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30)))

/** `SLUICE_PORT`: the gateway's port (beside Ollama's 11434). */
export const port = Config.integer("SLUICE_PORT")
/** `SLUICE_HOST`: the gateway's bind address; loopback by default. */
export const host = Config.string("SLUICE_HOST")
/** Splits a comma-separated list of Ollama addresses. */
export const splitHosts = (value: string): Array<string> =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)

/**
 * `OLLAMA_HOST`: where Ollama is, parsed like Ollama's own CLI does (host, host:port, scheme://host:port/path);
 * several comma-separated addresses make several backends.
 */
export const ollamaHosts = Config.string("OLLAMA_HOST").pipe(
  Config.map(splitHosts),
  Config.withDefault([defaults.ollama])
)

/** The engine's settings from the environment (the protection layers; see docs/fault-tolerance.md). */
export interface EngineConfig {
  readonly settings: Omit<EngineOptions, "backends">
  /** Applied to every backend. */
  readonly backend: Omit<BackendConfig, "url">
}

/**
 * `SLUICE_BACKEND_SLOTS` (8), `SLUICE_BACKEND_RPS` (unlimited), `SLUICE_BACKEND_TPM` (unlimited),
 * `SLUICE_CACHE_TTL` ("10 minutes"), `SLUICE_CACHE_MAX_ENTRIES` (10000), `SLUICE_CACHE_MAX_BYTES` (64 MiB),
 * `SLUICE_RETRY_MAX` (12), `SLUICE_DEADLINE` ("10 minutes").
 */
export const engine: Config.Config<EngineConfig> = Config.all({
  slots: Config.integer("SLUICE_BACKEND_SLOTS").pipe(Config.withDefault(8)),
  rps: Config.option(Config.number("SLUICE_BACKEND_RPS")),
  tpm: Config.option(Config.number("SLUICE_BACKEND_TPM")),
  ttl: Config.duration("SLUICE_CACHE_TTL").pipe(Config.withDefault(Duration.minutes(10))),
  maxEntries: Config.integer("SLUICE_CACHE_MAX_ENTRIES").pipe(Config.withDefault(10_000)),
  maxBytes: Config.integer("SLUICE_CACHE_MAX_BYTES").pipe(Config.withDefault(64 * 1024 * 1024)),
  maxRetries: Config.integer("SLUICE_RETRY_MAX").pipe(Config.withDefault(12)),
  deadline: Config.duration("SLUICE_DEADLINE").pipe(Config.withDefault(Duration.minutes(10)))
}).pipe(
  Config.map((c) => ({
    settings: {
      cache: { ttl: c.ttl, maxEntries: c.maxEntries, maxBytes: c.maxBytes },
      retry: { maxRetries: c.maxRetries },
      timeouts: { deadline: c.deadline }
    },
    backend: {
      slots: c.slots,
      rateLimit: {
        requestsPerSecond: Option.getOrUndefined(c.rps),
        tokensPerMinute: Option.getOrUndefined(c.tpm)
      }
    }
  }))
)
