/**
 * `sluice batch`: bulk jobs from a JSONL file through the engine, with progress, a summary, and resume.
 *
 * - Input: one job per line, `{"id": "...", "kind": "chat" | "generate" | "embed", "request": {...}}` (the request
 *   in Ollama's shape; `kind` defaults to "chat"). Ids must be unique; a line that is not a valid job is reported
 *   as a failed job (with its line number as id when it has none), never a crash.
 * - Output: one result per line, appended to the output file the moment its job ends:
 *   `{"id", "ok": true, "response"}` or `{"id", "ok": false, "error": {"tag", "message"}}`.
 * - Resume: ids already in the output file are skipped, so running the same command again after an interruption
 *   (SIGINT, a crash) finishes the rest without redoing a finished job or losing one. A job in flight when the run
 *   stopped has no result line and runs again. A failed job is a result too: delete its line to retry it.
 * - Jobs run through `Llm` with bounded concurrency and the "batch" priority, so interactive traffic on the same
 *   engine goes first.
 */
import { Effect, Schema, Stream } from "effect"
import { appendFileSync, existsSync, readFileSync } from "node:fs"
import { ChatRequest } from "../Domain/Chat.js"
import { EmbedRequest } from "../Domain/Embed.js"
import { GenerateRequest } from "../Domain/Generate.js"
import type { LlmError } from "../Domain/LlmError.js"
import { Llm } from "../Llm/Llm.js"

const Job = Schema.Union(
  Schema.Struct({ id: Schema.String, kind: Schema.optional(Schema.Literal("chat")), request: ChatRequest }),
  Schema.Struct({ id: Schema.String, kind: Schema.Literal("generate"), request: GenerateRequest }),
  Schema.Struct({ id: Schema.String, kind: Schema.Literal("embed"), request: EmbedRequest })
)
type Job = typeof Job.Type

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

const decodeJob = Schema.decodeUnknownEither(Schema.parseJson(Job))

/** The ids that already have a result line. */
export const finishedIds = (output: string): ReadonlySet<string> => {
  if (!existsSync(output)) return new Set()
  const ids = readFileSync(output, "utf8")
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .flatMap((l) => {
      try {
        const id = (JSON.parse(l) as { id?: unknown }).id
        return typeof id === "string" ? [id] : []
      } catch {
        return []
      }
    })
  return new Set(ids)
}

const idOf = (line: Line) => {
  try {
    const id = (JSON.parse(line.text) as { id?: unknown }).id
    return typeof id === "string" ? id : `line-${line.n}`
  } catch {
    return `line-${line.n}`
  }
}

const run = (llm: Llm, job: Job): Effect.Effect<unknown, LlmError> => {
  const call = { priority: "batch" as const }
  switch (job.kind) {
    case "generate":
      return llm.generate(job.request, call)
    case "embed":
      return llm.embed(job.request, call)
    default:
      return llm.chat(job.request, call)
  }
}

/** A result line. */
export interface Result {
  readonly id: string
  readonly ok: boolean
  readonly response?: unknown
  readonly error?: { readonly tag: string; readonly message: string }
}

/** Runs one line to a result line (never fails). */
const resultOf = (llm: Llm, line: Line): Effect.Effect<Result> => {
  const job = decodeJob(line.text)
  if (job._tag === "Left") {
    return Effect.succeed<Result>({
      id: idOf(line),
      ok: false,
      error: { tag: "InvalidJob", message: String(job.left) }
    })
  }
  return outcome(llm, job.right)
}

/** Runs a decoded job to its result line (never fails). */
const outcome = (llm: Llm, job: Job): Effect.Effect<Result> =>
  run(llm, job).pipe(
    Effect.map((response): Result => ({ id: job.id, ok: true, response })),
    Effect.catchAll((e) =>
      Effect.succeed<Result>({ id: job.id, ok: false, error: { tag: e._tag, message: e.message } })
    )
  )

const decodeJobValue = Schema.decodeUnknownEither(Job)

/**
 * Runs one already parsed job (the gateway's `POST /batches`) to a result line; never fails. A value that is not
 * a valid job is a failed result, named by its `id` when it has a string one, else by `fallbackId`.
 */
export const resultOfValue = (llm: Llm, value: unknown, fallbackId: string): Effect.Effect<Result> => {
  const job = decodeJobValue(value)
  if (job._tag === "Right") return outcome(llm, job.right)
  const id = typeof value === "object" && value !== null ? (value as { id?: unknown }).id : undefined
  return Effect.succeed<Result>({
    id: typeof id === "string" ? id : fallbackId,
    ok: false,
    error: { tag: "InvalidJob", message: String(job.left) }
  })
}

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
      Stream.mapEffect((line) => resultOf(llm, line), { concurrency: options.concurrency, unordered: true }),
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
