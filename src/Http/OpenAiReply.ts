/**
 * How a `/v1` reply goes out (the objects inside it are built in OpenAiResponse.ts): errors in OpenAI's envelope
 * `{"error":{"message","type","param","code"}}` with the native status, and SSE streams. An engine error brings its
 * own status and error object (`status`, `openAi` in Domain/LlmError.ts: `type` is `invalid_request_error` for
 * 400/413, `not_found_error` for 404, `api_error` otherwise, and an unknown model is `model 'x' not found` on every
 * route). `param` and `code` are null except for a body the wire Schema refuses (the field, and OpenAI's
 * `invalid_type`, `invalid_value` or `missing_required_parameter`).
 *
 * A stream is opened before the response starts (`Llm.chatStreamOpen`: its first chunk at hand), so a failure
 * before it (an unknown model, a full queue) is a proper status with the envelope. After it, a failure becomes one `data: {"error":{...}}` event and the
 * stream ends without `data: [DONE]`: OpenAI's SDKs raise an APIError on that event, and a client that only watches
 * for `[DONE]` sees it missing. A complete stream ends with `data: [DONE]`.
 */
import { HttpServerResponse } from "@effect/platform"
import { Stream } from "effect"
import { isLlmError, type LlmError } from "../Domain/LlmError.js"
import { type OpenAiError, openAiType } from "../Domain/LlmErrorFamily.js"
import type { BadRequest } from "./Guard.js"
import * as Respond from "./Respond.js"

/** OpenAI's error envelope; `param` names the field at fault, when it is known. */
const envelope = (error: OpenAiError, param: string | null = null) => ({
  error: { message: error.message, type: error.type, param, code: error.code }
})

/** An engine error or a refused request in OpenAI's envelope, with its status (and Retry-After when it has one). */
export const fromFailure = (e: LlmError | BadRequest): HttpServerResponse.HttpServerResponse =>
  isLlmError(e)
    ? Respond.withRetryAfter(Respond.json(envelope(e.openAi), e.status), e)
    : Respond.json(
        envelope({ message: e.message, type: openAiType(e.status), code: e.code ?? null }, e.param ?? null),
        e.status
      )

const encoder = new TextEncoder()
const event = (value: unknown): Uint8Array => encoder.encode(`data: ${JSON.stringify(value)}\n\n`)
const done = encoder.encode("data: [DONE]\n\n")

/** The `data: {"error": ...}` event that ends an SSE stream failing after its first event. */
export const errorEvent = (e: LlmError): Uint8Array => event(envelope(e.openAi))

/** Streams the events of an opened stream as SSE (see the module comment for failures). */
export const sse = <A>(events: Stream.Stream<A, LlmError>): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.stream(
    events.pipe(
      Stream.map(event),
      Stream.concat(Stream.succeed(done)),
      Stream.catchAll((e) => Stream.succeed(errorEvent(e)))
    ),
    { contentType: "text/event-stream", headers: { "cache-control": "no-cache" } }
  )
