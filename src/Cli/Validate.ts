/**
 * `sluice validate`: runs the startup checks `serve` runs (Lifecycle/StartupValidator.ts) with the same flags
 * and environment (and config file, `--config`), prints the table (check, severity, result, detail, what to do), and exits non-zero when a
 * fatal check fails (`StartupFailed`, printed by main). Nothing is served; nothing is changed.
 */
import { Command } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import * as ConfigEngine from "../Lifecycle/ConfigEngine.js"
import * as ConfigFile from "../Lifecycle/ConfigFile.js"
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
      // a config file was read and checked before any command ran (main.ts); say which one is in force
      const file = yield* ConfigFile.ConfigFile
      if (Option.isSome(file)) yield* Console.log(`config file ${file.value.path}: valid`)
      const targets = yield* ConfigEngine.targets(flags.ollama)
      const context = yield* StartupValidator.contextFrom({
        host: flags.host,
        port: flags.port,
        mode: flags.backend,
        ollama: targets.map((t) => (typeof t === "string" ? t : t.url)),
        dataDir: flags.dataDir
      })
      yield* StartupValidator.run(context, { print: "all" })
    })
).pipe(Command.withDescription("Run the startup checks serve runs, print them, and exit non-zero if a fatal one fails"))
