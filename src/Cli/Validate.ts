/**
 * `sluice validate`: runs the startup checks `serve` runs (Lifecycle/StartupValidator.ts) with the same flags
 * and environment, prints the table (check, severity, result, detail, what to do), and exits non-zero when a
 * fatal check fails (`StartupFailed`, printed by main). Nothing is served; nothing is changed.
 */
import { Command, Options } from "@effect/cli"
import { Effect } from "effect"
import * as Config from "../Config.js"
import * as StartupValidator from "../Lifecycle/StartupValidator.js"
import * as BackendFlags from "./BackendFlags.js"

const port = Options.integer("port").pipe(
  Options.withDescription("the port serve would listen on (SLUICE_PORT); checked to be free"),
  Options.withFallbackConfig(Config.port),
  Options.withDefault(Config.defaults.port)
)
const host = Options.text("host").pipe(
  Options.withDescription("the address serve would bind (SLUICE_HOST)"),
  Options.withFallbackConfig(Config.host),
  Options.withDefault(Config.defaults.host)
)

export const validate = Command.make(
  "validate",
  { port, host, ollama: BackendFlags.ollama, backend: BackendFlags.backend, dataDir: BackendFlags.dataDir },
  (flags) =>
    Effect.gen(function* () {
      const context = yield* StartupValidator.contextFrom({
        host: flags.host,
        port: flags.port,
        mode: flags.backend,
        ollama: flags.ollama,
        dataDir: flags.dataDir
      })
      yield* StartupValidator.run(context, { print: "all" })
    })
).pipe(Command.withDescription("Run the startup checks serve runs, print them, and exit non-zero if a fatal one fails"))
