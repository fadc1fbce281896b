/**
 * `sluice serve`: the gateway in front of Ollama (or, when none answers, the built-in simulator).
 * Flags override the environment (SLUICE_PORT, SLUICE_HOST, OLLAMA_HOST, SLUICE_BACKEND), which overrides
 * the defaults in Config.ts.
 */
import { Command } from "@effect/cli"
import { Effect, Layer } from "effect"
import * as Config from "../Config.js"
import * as AgentRuns from "../Http/AgentRuns.js"
import * as Server from "../Http/Server.js"
import * as EngineConfig from "../Llm/EngineConfig.js"
import * as BackendChoice from "../Lifecycle/BackendChoice.js"
import * as Checks from "../Lifecycle/Checks.js"
import * as ConfigEngine from "../Lifecycle/ConfigEngine.js"
import * as StartupValidator from "../Lifecycle/StartupValidator.js"
import * as Redis from "../Shared/Redis.js"
import * as Store from "../Store/Store.js"
import * as BackendFlags from "./BackendFlags.js"

const { backend, host, ollama, port } = BackendFlags

export const serve = Command.make("serve", { port, host, ollama, backend }, (options) =>
  Effect.gen(function* () {
    const targets = yield* ConfigEngine.targets(options.ollama)
    const urls = targets.map((t) => (typeof t === "string" ? t : t.url))
    const engine = yield* EngineConfig.engine
    const models = yield* ConfigEngine.models
    const dataDir = yield* Config.dataDir
    const context = yield* StartupValidator.contextFrom({
      ...options,
      ollama: urls,
      mode: options.backend,
      dataDir,
      bindsPort: true
    })
    yield* StartupValidator.run(context, { print: "problems" })
    const drainTimeout = yield* Config.drainTimeout
    const backends = BackendChoice.layer(options.backend, targets, {
      ...engine.settings,
      ...models,
      backend: engine.backend
    })
    // the agent runtime (AgentRuns) shares the engine and the database with the gateway; built above the gateway,
    // handOverOnShutdown starts the episodes' handover as the drain begins (its finalizer runs first)
    const server = AgentRuns.handOverOnShutdown.pipe(
      Layer.provideMerge(Server.layer({ port: options.port, host: options.host, drainTimeout })),
      Layer.provide(AgentRuns.layer)
    )
    // the shared Redis (SLUICE_REDIS_URL) reaches every layer above it; without the setting it provides nothing
    return yield* Layer.launch(
      server.pipe(
        Layer.provide(backends),
        Layer.provide(Store.layerFromConfig({ dataDir })),
        Layer.provide(Redis.layer)
      )
    ).pipe(
      // the port was not probed (Context.bindsPort): a failed listen is that check's failure, with its advice
      Effect.catchTag("ServeError", (error) => {
        const cause = error.cause as NodeJS.ErrnoException | undefined
        return Effect.fail(
          cause?.code === undefined
            ? error
            : new StartupValidator.StartupFailed({ failed: [Checks.listenFailed(options, cause)] })
        )
      })
    )
  })
).pipe(Command.withDescription("Serve Ollama's API through Sluice (default port 11435, beside Ollama's 11434)"))
