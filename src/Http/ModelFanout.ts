/**
 * One model-management request sent to several backends, and their answers made into one (ModelRoutes.ts).
 *
 * Choices:
 * - The outcome: success when at least one backend succeeded and every other one succeeded too or answered 404
 *   (a delete or copy of a model that only some backends hold is not a failure). Otherwise the first failure that
 *   is not a 404 (else the first 404) decides the status. When every backend failed alike, its own body is relayed
 *   (Ollama's exact words); else the message names the backend, and those that succeeded.
 * - A combined progress stream tags each backend's line with `"backend": "<url>"`, forwards it as it arrives, and
 *   ends with one terminal line: `{"status":"success"}` once every backend is done, or `{"error": ...}`. A backend's
 *   own `success` becomes `{"status":"finished","backend":...}` and its error line `{"status":"failed: ...",...}`:
 *   Ollama's clients stop reading at the first `success` or `error` and hang up, which would abort the others.
 * - Backends that fail before streaming (unreachable, 4xx, 5xx) count as failures; when all do, the answer is a
 *   proper status, not a stream. A failure in the middle of a stream counts as a 500, as Ollama's own does.
 */
import { type HttpClientRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Either, Option, Stream } from "effect"
import type { Backend } from "../Llm/Backends.js"
import { type Answer, isOk, messageOf, type ModelForward, relay } from "./ModelForward.js"
import * as Respond from "./Respond.js"

interface Failure {
  readonly backend: string
  readonly status: number
  readonly message: string
}

const failureOf = (answer: Answer): Failure => ({
  backend: answer.backend,
  status: answer.status,
  message: messageOf(answer)
})

/** The failure that decides a combined answer, with its message; none when the request succeeded. */
const verdict = (
  succeeded: ReadonlyArray<string>,
  failures: ReadonlyArray<Failure>,
  tolerate404: boolean
): Option.Option<Failure & { readonly alike: boolean }> => {
  const hard = tolerate404 ? failures.filter((f) => f.status !== 404) : failures
  if (hard.length === 0 && succeeded.length > 0) return Option.none()
  const culprit = hard[0] ?? failures[0]!
  const alike =
    succeeded.length === 0 && failures.every((f) => f.status === culprit.status && f.message === culprit.message)
  const also = succeeded.length === 0 ? "" : ` (succeeded on ${succeeded.join(", ")})`
  return Option.some({
    ...culprit,
    alike,
    message: alike ? culprit.message : `${culprit.backend}: ${culprit.message}${also}`
  })
}

/**
 * Several whole answers as one (see the module comment): on success, the first `201 Created` answer, else the first
 * success, relayed. `tolerate404: false` asks every backend to succeed (a blob exists only if every backend has it).
 */
export const combine = (
  answers: ReadonlyArray<Answer>,
  tolerate404 = true
): { readonly ok: boolean; readonly response: HttpServerResponse.HttpServerResponse } => {
  const failed = answers.filter((a) => !isOk(a.status))
  const succeeded = answers.filter((a) => isOk(a.status))
  return Option.match(
    verdict(
      succeeded.map((a) => a.backend),
      failed.map(failureOf),
      tolerate404
    ),
    {
      onNone: () => ({ ok: true, response: relay(succeeded.find((a) => a.status === 201) ?? succeeded[0]!) }),
      onSome: (f) => ({
        ok: false,
        response: f.alike ? relay(failed.find((a) => a.backend === f.backend)!) : Respond.error(f.status, f.message)
      })
    }
  )
}

const encoder = new TextEncoder()
/** One NDJSON line. */
export const line = (value: unknown) => encoder.encode(JSON.stringify(value) + "\n")

/** A progress line as an object (`{}` when it is not one). */
export const parse = (text: string): Record<string, unknown> => {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {}
  } catch {
    return {}
  }
}

const textOf = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value))

/**
 * `request` sent to every target as a stream, their progress merged into one NDJSON answer (see the module
 * comment); `onSuccess` runs before the terminal `success` line.
 */
export const progress = (
  forward: ModelForward,
  targets: ReadonlyArray<Backend>,
  request: HttpClientRequest.HttpClientRequest,
  onSuccess: Effect.Effect<void>
) =>
  Effect.gen(function* () {
    const opened = yield* Effect.forEach(targets, (b) => Effect.map(forward.open(b, request), (r) => [b, r] as const), {
      concurrency: "unbounded"
    })
    const early: Array<Answer> = []
    const succeeded: Array<string> = []
    const failures: Array<Failure> = []
    const streams: Array<Stream.Stream<Uint8Array>> = []
    for (const [backend, result] of opened) {
      if (Either.isLeft(result)) early.push(result.left)
      else if (!isOk(result.right.status)) early.push(yield* forward.read(backend, result.right))
      else streams.push(tagged(backend.url, forward.lines(backend, result.right), succeeded, failures))
    }
    // every backend failed before streaming: a proper status (the success answer cannot be reached)
    if (streams.length === 0) return combine(early).response
    failures.push(...early.map(failureOf))
    const last = Effect.suspend(() =>
      Option.match(verdict(succeeded, failures, true), {
        onNone: () => Effect.as(onSuccess, line({ status: "success" })),
        onSome: (f) => Effect.succeed(line({ error: f.message }))
      })
    )
    return HttpServerResponse.stream(
      Stream.concat(Stream.mergeAll(streams, { concurrency: "unbounded" }), Stream.fromEffect(last)),
      { contentType: "application/x-ndjson" }
    )
  })

/** One backend's progress lines, tagged; its outcome recorded in `succeeded` or `failures`. */
const tagged = (
  backend: string,
  lines: Stream.Stream<string, string>,
  succeeded: Array<string>,
  failures: Array<Failure>
): Stream.Stream<Uint8Array> => {
  const fail = (message: string) => {
    failures.push({ backend, status: 500, message })
    return line({ status: `failed: ${message}`, backend })
  }
  const done = () => succeeded.includes(backend) || failures.some((f) => f.backend === backend)
  return lines.pipe(
    Stream.filter(() => !done()),
    Stream.map((text) => {
      const value = parse(text)
      if (value["error"] !== undefined) return fail(textOf(value["error"]))
      if (value["status"] !== "success") return line({ ...value, backend })
      succeeded.push(backend)
      return line({ status: "finished", backend })
    }),
    Stream.catchAll((message) => Stream.succeed(fail(message))),
    Stream.concat(
      Stream.suspend(() => (done() ? Stream.empty : Stream.succeed(fail("the stream ended before success"))))
    )
  )
}
