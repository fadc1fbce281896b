/**
 * Sluice's configuration: every setting, its environment variable and its default, in one place.
 * Command-line flags override the environment; the environment overrides these defaults.
 */
import { Config } from "effect"

export type BackendMode = "auto" | "ollama" | "simulator"

/** The defaults, visible in one place. */
export const defaults = {
  port: 11435,
  host: "127.0.0.1",
  ollama: "http://127.0.0.1:11434",
  simulatorPort: 11434
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
