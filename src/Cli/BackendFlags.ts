/**
 * The flags shared by the commands that serve or call models (`serve`, `validate`, `batch`, `agent run`,
 * `agent resume`), with the same names,
 * environment fallbacks and meaning as `sluice serve`'s: `--ollama` (repeated; OLLAMA_HOST), `--backend
 * auto|ollama|simulator` (SLUICE_BACKEND, NODE_ENV=production -> ollama), and the engine settings of Llm/EngineConfig.ts.
 */
import { Options } from "@effect/cli"
import { Effect, Layer } from "effect"
import * as Config from "../Config.js"
import * as EngineConfig from "../Llm/EngineConfig.js"
import * as BackendChoice from "../Lifecycle/BackendChoice.js"
import * as ConfigEngine from "../Lifecycle/ConfigEngine.js"

export const port = Options.integer("port").pipe(
  Options.withDescription("the port the gateway listens on (SLUICE_PORT)"),
  Options.withFallbackConfig(Config.port),
  Options.withDefault(Config.defaults.port)
)

export const host = Options.text("host").pipe(
  Options.withDescription("the address the gateway binds (SLUICE_HOST); loopback by default"),
  Options.withFallbackConfig(Config.host),
  Options.withDefault(Config.defaults.host)
)

export const ollama = Options.text("ollama").pipe(
  Options.withDescription(
    "an Ollama server, as OLLAMA_HOST accepts it (host, host:port, scheme://host:port/path); repeat it, or " +
      "separate URLs with commas in OLLAMA_HOST, for several backends"
  ),
  Options.repeated,
  Options.map((urls) => urls.flatMap(Config.splitHosts))
)

export const backend = Options.choice("backend", ["auto", "ollama", "simulator"]).pipe(
  Options.withDescription(
    "auto: Ollama if it answers, else the built-in simulator; ollama: never the simulator; simulator: always (SLUICE_BACKEND)"
  ),
  Options.withFallbackConfig(Config.backendMode)
)

export const dataDir = Options.text("data-dir").pipe(
  Options.withDescription("the data directory (SLUICE_DATA_DIR)"),
  Options.withFallbackConfig(Config.dataDir)
)

export interface Flags {
  readonly ollama: ReadonlyArray<string>
  readonly backend: Config.BackendMode
}

/**
 * The engine (and BackendInfo) for the flags: their URLs, else OLLAMA_HOST's, else the config file's backends, else
 * the default; with the file's per-model settings (Lifecycle/ConfigEngine.ts).
 */
export const engineLayer = (flags: Flags) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const targets = yield* ConfigEngine.targets(flags.ollama)
      const engine = yield* EngineConfig.engine
      const models = yield* ConfigEngine.models
      return BackendChoice.layer(flags.backend, targets, { ...engine.settings, ...models, backend: engine.backend })
    })
  )
