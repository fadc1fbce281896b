/**
 * One bulk job and how the engine runs it to a result line: the format `sluice batch` reads from a JSONL file
 * (Cli/BatchRun.ts) and the gateway's `POST /batches` takes (Http/BatchJobs.ts).
 *
 * - A job: `{"id": "...", "kind": "chat" | "generate" | "embed", "request": {...}}`, the request in Ollama's shape;
 *   `kind` defaults to "chat".
 * - A result: `{"id", "ok": true, "response"}` or `{"id", "ok": false, "error": {"tag", "message"}}`.
 *
 * Choices:
 * - Running a job never fails: an engine error and a value that is not a valid job (tag `InvalidJob`) are failed
 *   results, so one bad job never stops a batch.
 * - Jobs run at the "batch" priority, so interactive traffic on the same engine goes first.
 * - In Llm, not in the CLI: both the CLI and the gateway run jobs, and Http must not import Cli
 *   (docs/architecture.md, "The dependency rule"). Reading files, resuming and progress stay in the CLI.
 */
import { Effect, Schema } from "effect"
import { ChatRequest } from "../Domain/Chat.js"
import { EmbedRequest } from "../Domain/Embed.js"
import { GenerateRequest } from "../Domain/Generate.js"
import type { LlmError } from "../Domain/LlmError.js"
import type { Llm } from "./Llm.js"

const Job = Schema.Union(
  Schema.Struct({ id: Schema.String, kind: Schema.optional(Schema.Literal("chat")), request: ChatRequest }),
  Schema.Struct({ id: Schema.String, kind: Schema.Literal("generate"), request: GenerateRequest }),
  Schema.Struct({ id: Schema.String, kind: Schema.Literal("embed"), request: EmbedRequest })
)
type Job = typeof Job.Type

/** A result line. */
export interface Result {
  readonly id: string
  readonly ok: boolean
  readonly response?: unknown
  readonly error?: { readonly tag: string; readonly message: string }
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

/** Runs a decoded job to its result line (never fails). */
const outcome = (llm: Llm, job: Job): Effect.Effect<Result> =>
  run(llm, job).pipe(
    Effect.map((response): Result => ({ id: job.id, ok: true, response })),
    Effect.catchAll((e) =>
      Effect.succeed<Result>({ id: job.id, ok: false, error: { tag: e._tag, message: e.message } })
    )
  )

const invalid = (id: string, error: unknown): Effect.Effect<Result> =>
  Effect.succeed<Result>({ id, ok: false, error: { tag: "InvalidJob", message: String(error) } })

/** The id a JSON line names, when it is an object with a string `id`. */
export const idOfLine = (text: string): string | undefined => {
  try {
    const id = (JSON.parse(text) as { id?: unknown }).id
    return typeof id === "string" ? id : undefined
  } catch {
    return undefined
  }
}

const decodeLine = Schema.decodeUnknownEither(Schema.parseJson(Job))

/**
 * Runs one line of a JSONL file to a result line; never fails. A line that is not a valid job is a failed result,
 * named by its `id` when it has a string one, else by `fallbackId`.
 */
export const resultOfLine = (llm: Llm, text: string, fallbackId: string): Effect.Effect<Result> => {
  const job = decodeLine(text)
  return job._tag === "Right" ? outcome(llm, job.right) : invalid(idOfLine(text) ?? fallbackId, job.left)
}

const decodeValue = Schema.decodeUnknownEither(Job)

/**
 * Runs one already parsed job (the gateway's `POST /batches`) to a result line; never fails. A value that is not
 * a valid job is a failed result, named by its `id` when it has a string one, else by `fallbackId`.
 */
export const resultOfValue = (llm: Llm, value: unknown, fallbackId: string): Effect.Effect<Result> => {
  const job = decodeValue(value)
  if (job._tag === "Right") return outcome(llm, job.right)
  const id = typeof value === "object" && value !== null ? (value as { id?: unknown }).id : undefined
  return invalid(typeof id === "string" ? id : fallbackId, job.left)
}
