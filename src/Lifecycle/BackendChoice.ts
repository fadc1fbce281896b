/**
 * Chooses what `sluice serve` talks to. In `auto` mode it probes Ollama at the configured URL; when nothing
 * answers it starts the built-in simulator on a free loopback port and serves in front of it, and says so
 * (a banner, and `"backend": "simulator"` in /health). `ollama` refuses that fallback; `simulator` forces it.
 * Either way every call goes through the engine (`Llm`) and `OllamaClient` over HTTP, so the path under test is
 * the real one. Several Ollama URLs make several backends; `auto` falls back to the simulator only when none answers.
 */
import { Console, Context, Data, Duration, Effect, Layer } from "effect"
import type { BackendMode } from "../Config.js"
import type { BackendConfig } from "../Llm/Backends.js"
import * as Engine from "../Llm/Engine.js"
import * as Ollama from "../Ollama/OllamaClient.js"
import { Simulator } from "../Simulator/Simulator.js"
import { defaultConfig } from "../Simulator/SimulatorConfig.js"

/** What the gateway serves in front of, for /health and the banner. */
export class BackendInfo extends Context.Tag("sluice/BackendInfo")<
  BackendInfo,
  {
    readonly kind: "ollama" | "simulator"
    readonly urls: ReadonlyArray<string>
    readonly requested: ReadonlyArray<string>
  }
>() {}

export class BackendUnavailable extends Data.TaggedError("BackendUnavailable")<{
  readonly urls: ReadonlyArray<string>
}> {
  override get message() {
    return (
      `No Ollama answered at ${this.urls.join(", ")}, and the backend is "ollama" (--backend ollama, SLUICE_BACKEND=ollama ` +
      `or NODE_ENV=production), so Sluice will not fall back to its simulator. Start Ollama, point --ollama ` +
      `(or OLLAMA_HOST) at it, or pass --backend simulator to serve simulated models on purpose.`
    )
  }
}

const probeTimeout = Duration.seconds(2)

/** Whether an Ollama answers `GET /` at `url` within a short timeout. */
const answers = (url: string) =>
  Effect.flatMap(Ollama.OllamaClient, (client) => client.heartbeat).pipe(
    Effect.timeout(probeTimeout),
    Effect.as(true),
    Effect.orElseSucceed(() => false),
    Effect.provide(Ollama.layer({ host: url, connectTimeout: probeTimeout }))
  )

/** Engine settings other than the backends (cache, retries, timeouts, fallbacks), and settings for every backend. */
export type EngineSettings = Omit<Engine.Options, "backends"> & { readonly backend?: Omit<BackendConfig, "url"> }

/** A backend: its address alone (the settings for every backend apply), or with settings of its own. */
export type Target = string | BackendConfig

const urlOf = (target: Target) => (typeof target === "string" ? target : target.url)

/** The target's own settings over the settings for every backend (rate limits merged key by key). */
const configOf = (target: Target, settings: EngineSettings): BackendConfig => {
  if (typeof target === "string") return { ...settings.backend, url: target }
  const rateLimit = { ...settings.backend?.rateLimit, ...target.rateLimit }
  return { ...settings.backend, ...target, ...(Object.keys(rateLimit).length > 0 ? { rateLimit } : {}) }
}

const engine = (targets: ReadonlyArray<Target>, settings: EngineSettings) =>
  Engine.layer({ ...settings, backends: targets.map((t) => configOf(t, settings)) })

const ollama = (targets: ReadonlyArray<Target>, settings: EngineSettings) => {
  const urls = targets.map(urlOf)
  return Layer.merge(engine(targets, settings), Layer.succeed(BackendInfo, { kind: "ollama", urls, requested: urls }))
}

const banner = (requested: ReadonlyArray<string>, url: string, forced: boolean) =>
  Console.log(
    [
      "",
      "  ┌─ Sluice is serving SIMULATED models ─────────────────────────────────────",
      forced
        ? "  │ --backend simulator: the built-in Ollama simulator answers every call."
        : `  │ No Ollama answered at ${requested.join(", ")}, so the built-in simulator stands in.`,
      `  │ Simulator: ${url} (deterministic text and embeddings, not a real model).`,
      "  │ For real models: start Ollama, or pass --ollama URL; --backend ollama forbids this fallback.",
      "  └──────────────────────────────────────────────────────────────────────────",
      ""
    ].join("\n")
  )

const simulator = (requested: ReadonlyArray<string>, forced: boolean, settings: EngineSettings) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const sim = yield* Simulator
      yield* banner(requested, sim.url, forced)
      return Layer.merge(
        engine([sim.url], settings),
        Layer.succeed(BackendInfo, { kind: "simulator", urls: [sim.url], requested })
      )
    })
  ).pipe(Layer.provide(Simulator.layer({ port: 0, host: "127.0.0.1", config: defaultConfig })))

/**
 * The engine (and BackendInfo) for `mode`, probing the targets first unless the simulator is forced. The simulator
 * stands in for all of them as one backend, with the settings for every backend.
 */
export const layer = (mode: BackendMode, targets: ReadonlyArray<Target>, settings: EngineSettings = {}) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const urls = targets.map(urlOf)
      if (mode === "simulator") return simulator(urls, true, settings)
      const up = yield* Effect.forEach(urls, answers, { concurrency: "unbounded" })
      if (up.some((ok) => ok)) return ollama(targets, settings)
      if (mode === "ollama") return yield* new BackendUnavailable({ urls })
      return simulator(urls, false, settings)
    })
  )
