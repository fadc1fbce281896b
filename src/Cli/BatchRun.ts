/**
 * `sluice batch`: bulk jobs from a JSONL file through the engine, with progress, a summary, and resume.
 *
 * - Input: one job per line in the format of Llm/BatchJob.ts. Ids must be unique; a line that is not a valid job
 *   is reported as a failed job (with its line number as id when it has none), never a crash.
 * - Output: one result line per job, appended to the output file the moment its job ends.
 * - Resume: ids already in the output file are skipped, so running the same command again after an interruption
 *   (SIGINT, a crash) finishes the rest without redoing a finished job or losing one. A job in flight when the run
 *   stopped has no result line and runs again. A failed job is a result too: delete its line to retry it.
 * - Jobs run through `Llm` with bounded concurrency (Llm/Jobs.ts, results as they finish) and the "batch"
 *   priority, so interactive traffic on the same engine goes first.
 */
import { Effect, Stream } from "effect"
import { appendFileSync, existsSync, readFileSync } from "node:fs"
import * as BatchJob from "../Llm/BatchJob.js"
import * as Jobs from "../Llm/Jobs.js"
import { Llm } from "../Llm/Llm.js"

export interface Summary {
  readonly total: number
  readonly skipped: number
  readonly succeeded: number
  readonly failed: number
  readonly seconds: number
}

interface Line {
  readonly n: number
  readonly text: string
}

/** The ids that already have a result line. */
export const finishedIds = (output: string): ReadonlySet<string> => {
  if (!existsSync(output)) return new Set()
  const ids = readFileSync(output, "utf8")
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .flatMap((l) => {
      const id = BatchJob.idOfLine(l)
      return id === undefined ? [] : [id]
    })
  return new Set(ids)
}

const idOf = (line: Line) => BatchJob.idOfLine(line.text) ?? `line-${line.n}`

/** Progress on stderr: a line every `every` jobs (and at the end). */
const progress = (total: number, started: number) => (done: number, failed: number) => {
  const elapsed = (Date.now() - started) / 1000
  const rate = done / Math.max(elapsed, 0.001)
  const eta = rate > 0 ? Math.ceil((total - done) / rate) : 0
  process.stderr.write(`batch: ${done}/${total} done, ${failed} failed, ${rate.toFixed(1)} jobs/s, eta ${eta}s\n`)
}

/** Runs the jobs of `input` not yet in `output`, appending results; returns the summary. */
export const runBatch = (options: { readonly input: string; readonly output: string; readonly concurrency: number }) =>
  Effect.gen(function* () {
    const llm = yield* Llm
    const lines = readFileSync(options.input, "utf8")
      .split("\n")
      .map((text, i) => ({ n: i + 1, text }))
      .filter((l) => l.text.trim().length > 0)
    const done = finishedIds(options.output)
    const todo = lines.filter((l) => !done.has(idOf(l)))
    const started = Date.now()
    const report = progress(todo.length, started)
    const every = Math.max(1, Math.floor(todo.length / 20))
    const counts = { done: 0, failed: 0 }
    yield* Stream.fromIterable(todo).pipe(
      Jobs.run((line: Line) => BatchJob.resultOfLine(llm, line.text, idOf(line)), {
        concurrency: options.concurrency,
        ordered: false
      }),
      Stream.runForEach((result) =>
        Effect.sync(() => {
          appendFileSync(options.output, JSON.stringify(result) + "\n")
          counts.done += 1
          if (!result.ok) counts.failed += 1
          if (counts.done % every === 0 || counts.done === todo.length) report(counts.done, counts.failed)
        })
      )
    )
    return {
      total: lines.length,
      skipped: lines.length - todo.length,
      succeeded: counts.done - counts.failed,
      failed: counts.failed,
      seconds: (Date.now() - started) / 1000
    } satisfies Summary
  })
