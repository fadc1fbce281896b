/**
 * The `sluice` command line: composes the commands and runs them on Node. SIGINT/SIGTERM interrupt the
 * program, which closes every Scope (servers, pools, the simulator) before the process exits.
 */
import { Command, ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Layer, Option } from "effect"
import pkg from "../package.json" with { type: "json" }
import { agent } from "./Cli/Agent.js"
import { archive } from "./Cli/Archive.js"
import { backup, restore } from "./Cli/Backup.js"
import { batch } from "./Cli/Batch.js"
import { keys } from "./Cli/Keys.js"
import { serve } from "./Cli/Serve.js"
import { simulate } from "./Cli/Simulate.js"
import { validate } from "./Cli/Validate.js"
import * as ConfigFile from "./Lifecycle/ConfigFile.js"
import * as Logging from "./Observability/Logging.js"
import * as Recorders from "./Observability/Recorders.js"
import * as Telemetry from "./Observability/Telemetry.js"

const sluice = Command.make("sluice").pipe(
  Command.withDescription(
    "Sluice: a fast, protective engine in front of Ollama. Every command also takes --config <file> (or SLUICE_CONFIG): a YAML or JSON config file, under the environment and flags (docs/configuration.md)"
  ),
  Command.withSubcommands([serve, batch, simulate, agent, archive, validate, keys, backup, restore])
)

const run = Command.run(sluice, { name: "sluice", version: pkg.version })

/** The CLI prints its own validation errors; every other failure is printed once, readably, here. */
const report = (cause: Cause.Cause<unknown>) =>
  Cause.isInterruptedOnly(cause)
    ? Effect.void
    : Effect.forEach(Cause.failures(cause), (e) =>
        ValidationError.isValidationError(e)
          ? Effect.void
          : Console.error(`sluice: ${e instanceof Error ? e.message : String(e)}`)
      )

/**
 * `--config <path>` (or SLUICE_CONFIG) applies to every command: the file is read and checked first, and its
 * settings sit behind the environment for everything below, the flags' fallbacks and the layers included.
 */
const main = Effect.gen(function* () {
  const { path, argv } = ConfigFile.fromArgv(process.argv)
  const loaded = path === undefined ? Option.none() : Option.some(yield* ConfigFile.load(path))
  const program = run(argv).pipe(
    Effect.zipLeft(Recorders.recordBuildInfo(pkg.version)),
    Effect.provide(Layer.mergeAll(NodeContext.layer, Logging.layer, Telemetry.layer(pkg.version))),
    Effect.provideService(ConfigFile.ConfigFile, loaded)
  )
  return yield* Option.match(loaded, {
    onNone: () => program,
    onSome: (file) => Effect.withConfigProvider(program, ConfigFile.provider(file))
  })
})

main.pipe(Effect.tapErrorCause(report), NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true }))
