/**
 * The engine's settings from the environment: the protection layers applied to every backend (slots, rate limits)
 * and the engine's own (cache, retries, deadline); see docs/fault-tolerance.md and docs/configuration.md.
 *
 * Choices:
 * - Beside the engine rather than in `Config.ts`: the settings are typed by the engine's own options
 *   (`Engine.Options`, `BackendConfig`), and `Config.ts` sits below Llm, so it cannot name them
 *   (docs/architecture.md, "The dependency rule").
 */
import { Config, Duration, Option } from "effect"
import type { BackendConfig } from "./Backends.js"
import type { Options as EngineOptions } from "./Engine.js"

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
