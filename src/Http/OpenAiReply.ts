/**
 * How the `/v1` routes answer: JSON bodies, errors in OpenAI's envelope
 * `{"error":{"message","type","param","code"}}` with the native status (`type` is
 * `invalid_request_error` for 400/413, `not_found_error` for 404, `api_error` otherwise), and SSE streams. `param`
 * and `code` are null except for a body the wire Schema refuses (the field, and OpenAI's `invalid_type`,
 * `invalid_value` or `missing_required_parameter`). An unknown model is `model 'x' not found` on every route.
 *
 * A stream pulls its first event before the response starts, so a failure before it (an unknown model, a full
 * queue) is a proper status with the envelope. After it, a failure becomes one `data: {"error":{...}}` event and the
 * stream ends without `data: [DONE]`: OpenAI's SDKs raise an APIError on that event, and a client that only watches
 * for `[DONE]` sees it missing. A complete stream ends with `data: [DONE]`.
 */
import { HttpServerResponse } from "@effect/platform"
import { Chunk, Effect, Either, Option, Stream } from "effect"
import type { Scope } from "effect"
import { type LlmError, retryAfterOf, statusOf } from "../Domain/LlmError.js"
import type { BadRequest } from "./Guard.js"
import * as Respond from "./Respond.js"

export const errorType = (status: number): string =>
  status === 404 ? "not_found_error" : status === 400 || status === 413 ? "invalid_request_error" : "api_error"

/** OpenAI's error envelope; `param` names the field at fault and `code` says how, when they are known. */
export const envelope = (status: number, message: string, param: string | null = null, code: string | null = null) => ({
  error: { message, type: errorType(status), param, code }
})

export const error = (
  status: number,
  message: string,
  param: string | null = null,
  code: string | null = null
): HttpServerResponse.HttpServerResponse => Respond.json(envelope(status, message, param, code), status)

/** One message for an unknown model on every route (Ollama's embed handler words it differently). */
const messageOf = (e: LlmError): string => (e._tag === "ModelNotFound" ? `model '${e.model}' not found` : e.message)

/** An engine error or a refused request in OpenAI's envelope, with its status (and Retry-After when it has one). */
export const fromFailure = (e: LlmError | BadRequest): HttpServerResponse.HttpServerResponse => {
  if (e._tag === "BadRequest") return error(e.status, e.message, e.param ?? null, e.code ?? null)
  const response = error(statusOf(e), messageOf(e))
  const retryAfter = retryAfterOf(e)
  return retryAfter === undefined
    ? response
    : HttpServerResponse.setHeader(response, "retry-after", String(Math.max(1, Math.ceil(retryAfter / 1000))))
}

const encoder = new TextEncoder()
const event = (value: unknown): Uint8Array => encoder.encode(`data: ${JSON.stringify(value)}\n\n`)
const done = encoder.encode("data: [DONE]\n\n")

/** Streams `events` as SSE (see the module comment for failures). Needs the request's Scope. */
export const sse = <A>(
  events: Stream.Stream<A, LlmError>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scope.Scope> =>
  Effect.gen(function* () {
    // Stream.toPull, as in Respond.ndjson: a peeled stream turns a later failure into a defect
    const pull = yield* Stream.toPull(events)
    const first = yield* Effect.either(pull)
    if (Either.isLeft(first) && Option.isSome(first.left)) return fromFailure(first.left.value)
    const head = Either.getOrElse(first, () => Chunk.empty<A>())
    const body = Stream.concat(
      Stream.fromChunk(head),
      Either.isLeft(first) ? Stream.empty : Stream.repeatEffectChunkOption(pull)
    ).pipe(
      Stream.map(event),
      Stream.concat(Stream.succeed(done)),
      Stream.catchAll((e) => Stream.succeed(event(envelope(statusOf(e), messageOf(e)))))
    )
    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache" }
    })
  })
