/**
 * `sluice validate`: runs the startup checks `serve` runs (Lifecycle/StartupValidator.ts) with the same flags
 * and environment, prints the table (check, severity, result, detail, what to do), and exits non-zero when a
 * fatal check fails (`StartupFailed`, printed by main). Nothing is served; nothing is changed.
 */
import { Command } from "@effect/cli"
import { Effect } from "effect"
import * as StartupValidator from "../Lifecycle/StartupValidator.js"
import * as BackendFlags from "./BackendFlags.js"

export const validate = Command.make(
  "validate",
  {
    port: BackendFlags.port,
    host: BackendFlags.host,
    ollama: BackendFlags.ollama,
    backend: BackendFlags.backend,
    dataDir: BackendFlags.dataDir
  },
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
