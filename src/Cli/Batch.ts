/** `sluice batch <in.jsonl>`: bulk jobs through the engine, resumable (see BatchRun.ts). */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import * as BackendFlags from "./BackendFlags.js"
import { runBatch } from "./BatchRun.js"

const input = Args.file({ name: "jobs.jsonl", exists: "yes" })
const output = Options.text("out").pipe(
  Options.withDescription("where results go, one JSON line per job (default: <jobs>.results.jsonl); rerun to resume"),
  Options.optional
)
const concurrency = Options.integer("concurrency").pipe(
  Options.withDescription("jobs in flight at once (the engine's scheduler still bounds each backend)"),
  Options.withDefault(16)
)

export const batch = Command.make(
  "batch",
  { input, output, concurrency, ollama: BackendFlags.ollama, backend: BackendFlags.backend },
  (flags) =>
    Effect.gen(function* () {
      const out =
        flags.output._tag === "Some" ? flags.output.value : flags.input.replace(/(\.jsonl)?$/, ".results.jsonl")
      const summary = yield* runBatch({ input: flags.input, output: out, concurrency: flags.concurrency }).pipe(
        Effect.provide(BackendFlags.engineLayer(flags))
      )
      yield* Console.log(
        `batch: ${summary.total} jobs: ${summary.succeeded} succeeded, ${summary.failed} failed, ` +
          `${summary.skipped} already done; ${summary.seconds.toFixed(1)} s; results in ${out}`
      )
    })
).pipe(Command.withDescription("Run a JSONL file of jobs through the engine, with progress; rerun to resume"))
