/**
 * `sluice simulate`: the built-in Ollama simulator as a standalone server, for trying clients, tests and
 * benchmarks without a GPU. Faults can be set here and changed at run time with `PUT /_sim/faults`.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Option } from "effect"
import { validateFaults } from "../Simulator/Faults.js"
import { Simulator, layer } from "../Simulator/Simulator.js"
import { defaultConfig, type SimulatorConfig } from "../Simulator/SimulatorConfig.js"

const port = Options.integer("port").pipe(
  Options.withDescription("the port to listen on (Ollama's own is 11434)"),
  Options.withDefault(11434)
)
const host = Options.text("host").pipe(Options.withDefault("127.0.0.1"))
const parallel = Options.integer("parallel").pipe(
  Options.withDescription("slots per model (OLLAMA_NUM_PARALLEL); default per model"),
  Options.optional
)
const maxQueue = Options.integer("max-queue").pipe(
  Options.withDescription("capacity of the scheduling queue (OLLAMA_MAX_QUEUE)"),
  Options.withDefault(defaultConfig.maxQueue)
)
const strictQueue = Options.boolean("strict-queue").pipe(
  Options.withDescription("count requests waiting for a slot against --max-queue too (503 under overload)")
)
const faults = Options.text("faults").pipe(
  Options.withDescription('fault rates as JSON, e.g. {"error500":0.05,"reset":0.01}'),
  Options.optional
)

interface Flags {
  readonly parallel: Option.Option<number>
  readonly maxQueue: number
  readonly strictQueue: boolean
  readonly faults: Option.Option<string>
}

const configFrom = (flags: Flags) =>
  Effect.gen(function* () {
    const parsed = yield* Option.match(flags.faults, {
      onNone: () => Effect.succeed<unknown>({}),
      onSome: (text) => Effect.try({ try: () => JSON.parse(text) as unknown, catch: () => "--faults is not JSON" })
    })
    const checked = validateFaults(parsed)
    if (typeof checked === "string") return yield* Effect.fail(`--faults: ${checked}`)
    const config: SimulatorConfig = {
      ...defaultConfig,
      maxQueue: flags.maxQueue,
      strictQueue: flags.strictQueue,
      faults: { ...defaultConfig.faults, ...checked },
      models: defaultConfig.models.map((m) => ({
        ...m,
        numParallel: Option.getOrElse(flags.parallel, () => m.numParallel)
      }))
    }
    return config
  }).pipe(Effect.mapError((reason) => new Error(reason)))

export const simulate = Command.make("simulate", { port, host, parallel, maxQueue, strictQueue, faults }, (flags) =>
  Effect.flatMap(configFrom(flags), (config) =>
    Layer.launch(
      Layer.effectDiscard(
        Effect.flatMap(Simulator, (sim) =>
          Console.log(`Ollama simulator on ${sim.url} (models: ${config.models.map((m) => m.name).join(", ")})`)
        )
      ).pipe(Layer.provide(layer({ port: flags.port, host: flags.host, config })))
    )
  )
).pipe(Command.withDescription("Run the built-in Ollama simulator (simulated models, deterministic output)"))
