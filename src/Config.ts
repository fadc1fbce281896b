/**
 * Sluice's configuration: the settings of the process as a whole (addresses, backend mode, data directory, drain),
 * their environment variables and their defaults, in one place. Command-line flags override the environment; the
 * environment overrides these defaults.
 *
 * Choices:
 * - This file imports nothing else from src/, so every layer may read it (docs/architecture.md, "The dependency
 *   rule"). Settings typed by a higher layer's own options are read beside that layer: the engine's in
 *   `Llm/EngineConfig.ts`, health's in `Observability/HealthConfig.ts`, the gateway's keys in `Http/AuthPolicy.ts`.
 */
import { Config, Duration } from "effect"

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

/**
 * Whether `host` binds loopback only (so only this machine can call). The gateway turns authentication off on
 * loopback until a key exists, and startup refuses a non-loopback address without a key: both read this.
 */
export const isLoopback = (host: string): boolean => {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
  return h === "localhost" || h === "::1" || h.startsWith("127.")
}
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
