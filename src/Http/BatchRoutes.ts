/**
 * Sluice's batch API (docs/gateway.md): submit a batch of jobs, follow its progress, read its result lines so
 * far, cancel it. Jobs have the shape of `sluice batch` input lines (`{id, kind?, request}`) and results the shape
 * of its output lines (`{id, ok, response | error}`). Errors answer in Ollama's `{"error": ...}` shape.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Option, Schema } from "effect"
import { BatchJobs, type Progress } from "./BatchJobs.js"
import { type BadRequest, decodeBody } from "./Body.js"
import * as Respond from "./Respond.js"

/** The most jobs one batch may hold. */
export const maxJobs = 10_000

const Submit = Schema.Struct({ jobs: Schema.Array(Schema.Unknown) })

const handle = <R>(effect: Effect.Effect<HttpServerResponse.HttpServerResponse, BadRequest, R>) =>
  Effect.catchTag(effect, "BadRequest", (e) => Effect.succeed(Respond.error(e.status, e.message)))

const duplicateOf = (jobs: ReadonlyArray<unknown>): string | undefined => {
  const seen = new Set<string>()
  for (const job of jobs) {
    const id = typeof job === "object" && job !== null ? (job as { id?: unknown }).id : undefined
    if (typeof id !== "string") continue
    if (seen.has(id)) return id
    seen.add(id)
  }
  return undefined
}

const submit = handle(
  Effect.gen(function* () {
    const { jobs } = yield* decodeBody(Submit)
    if (jobs.length === 0) return Respond.error(400, "a batch needs at least one job")
    if (jobs.length > maxJobs) return Respond.error(413, `too many jobs: a batch holds at most ${maxJobs}`)
    const duplicate = duplicateOf(jobs)
    if (duplicate !== undefined) return Respond.error(400, `duplicate job id "${duplicate}"`)
    const progress = yield* Effect.flatMap(BatchJobs, (batches) => batches.submit(jobs))
    return Respond.json({ id: progress.id, total: progress.total }, 202)
  })
)

const unknownBatch = (id: string) => Respond.error(404, `batch "${id}" not found`)

/** Answers with the batch named by the path, or 404. */
const withBatch = <R>(
  f: (batches: BatchJobs, progress: Progress) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>
) =>
  Effect.gen(function* () {
    const id = (yield* HttpRouter.params).id ?? ""
    const batches = yield* BatchJobs
    const progress = batches.progress(id)
    return Option.isNone(progress) ? unknownBatch(id) : yield* f(batches, progress.value)
  })

const status = withBatch((_, progress) => Effect.succeed(Respond.json(progress)))

const results = withBatch((batches, progress) => {
  const lines = Option.getOrElse(batches.results(progress.id), () => [])
  return Effect.succeed(
    HttpServerResponse.text(lines.map((l) => JSON.stringify(l) + "\n").join(""), {
      contentType: "application/x-ndjson"
    })
  )
})

const cancel = withBatch((batches, progress) =>
  progress.status !== "running"
    ? Effect.succeed(Respond.error(409, `batch "${progress.id}" is not running (${progress.status})`))
    : Effect.map(batches.cancel(progress.id), (after) =>
        Respond.json(
          Option.getOrElse(after, () => progress),
          202
        )
      )
)

export const routes = HttpRouter.empty.pipe(
  HttpRouter.post("/batches", submit),
  HttpRouter.get("/batches/:id", status),
  HttpRouter.get("/batches/:id/results", results),
  HttpRouter.post("/batches/:id/cancel", cancel)
)
