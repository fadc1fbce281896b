/**
 * The gateway's side of graceful shutdown (Lifecycle/Shutdown.ts holds the drain's state and finalizer), as the
 * gateway's front middleware applies it (Front.ts): while draining, a new request is refused with 503 `ShuttingDown`
 * and `Retry-After: 5`; a request in flight is counted until its last byte is handed to Node; at the drain deadline a
 * unary answer still running ends with 503 `ShuttingDown` (and `Retry-After: 5`) in its family's shape, and a
 * streamed body ends with one error line in its own framing (NDJSON `{"error": ...}`, or an SSE `data:` event in
 * OpenAI's envelope for `/v1`).
 *
 * Choices:
 * - In Http, not Lifecycle: it builds the wire-format error bodies of both API families, and Lifecycle sits below
 *   Http (docs/architecture.md, "The dependency rule"). The refusal is `Respond.fromError`, the body every other
 *   engine error gets.
 */
import { HttpBody, type HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Chunk, Deferred, Effect, Option, Stream } from "effect"
import { ShuttingDown } from "../Domain/LlmError.js"
import type * as Shutdown from "../Lifecycle/Shutdown.js"
import * as OpenAiReply from "./OpenAiReply.js"
import * as Respond from "./Respond.js"

/** The refusal while draining. */
export const refusal = () => HttpServerResponse.setHeader(Respond.fromError(new ShuttingDown()), "retry-after", "5")

/** The answer of a unary request ended at the deadline (Deadline.ts), in its family's shape. */
const endedAt = (request: HttpServerRequest.HttpServerRequest) =>
  request.url.startsWith("/v1/")
    ? HttpServerResponse.setHeader(OpenAiReply.fromFailure(new ShuttingDown()), "retry-after", "5")
    : refusal()

/**
 * A counted request's answer, before it is written: a handler ended at the deadline leaves the server's empty 503,
 * which gets the error body its clients expect; a streamed body ends at the deadline with an error line. The
 * request counts in flight until the server has written the answer (Front.ts).
 */
export const answer = (
  drain: Shutdown.Service,
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  const body = response.body
  if (body._tag === "Stream")
    return Effect.succeed(
      HttpServerResponse.setBody(
        response,
        HttpBody.stream(
          cutAtDeadline(drain, body.stream, finalLine(body.contentType)),
          body.contentType,
          body.contentLength
        )
      )
    )
  if (response.status !== 503 || body._tag !== "Empty") return Effect.succeed(response)
  return Effect.map(Deferred.isDone(drain.deadline), (late) => (late ? endedAt(request) : response))
}

/** The last line of a stream cut at the deadline, in the stream's own framing (NDJSON, or SSE for /v1). */
const finalLine = (contentType: string | undefined): Uint8Array =>
  contentType?.startsWith("text/event-stream")
    ? OpenAiReply.errorEvent(new ShuttingDown())
    : Respond.errorLine(new ShuttingDown())

/**
 * Each pull races the deadline; once it passes, the error line goes out and the stream ends (the upstream is
 * interrupted when the stream's scope closes). A plain `Stream.interruptWhen` is not enough here: interrupting an
 * engine stream mid-pull surfaces as an interruption of the whole body, and the error line would never be sent.
 */
const cutAtDeadline = <E>(drain: Shutdown.Service, stream: Stream.Stream<Uint8Array, E>, line: Uint8Array) =>
  Stream.unwrapScoped(
    Effect.map(Stream.toPull(stream), (pull) => {
      let ended = false
      const cut = Effect.map(Effect.interruptible(Deferred.await(drain.deadline)), () => {
        ended = true
        return Chunk.of(line)
      })
      // disconnect: the race does not wait for the upstream pull to finish interrupting (aborting the request,
      // giving back its slot), which on a loaded machine took longer than the drain's wait for the error line
      const step = Effect.suspend(() =>
        ended ? Effect.fail(Option.none()) : Effect.raceFirst(Effect.disconnect(pull), cut)
      )
      return Stream.repeatEffectChunkOption(step)
    })
  )
