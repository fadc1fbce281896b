/**
 * How the gateway answers in Ollama's own shapes: JSON bodies with `application/json; charset=utf-8`,
 * errors as `{"error": msg}` with the status Ollama would use, and NDJSON streams that send nothing
 * (not even the status) until the first chunk exists, exactly like Ollama, so an error that happens
 * before the first chunk still gets its real status code.
 */
import { HttpServerResponse } from "@effect/platform"
import { Chunk, Effect, Either, Option, Stream } from "effect"
import type { Scope } from "effect"
import type { LlmError } from "../Domain/LlmError.js"

const jsonContentType = "application/json; charset=utf-8"
const encoder = new TextEncoder()

/** A JSON body the way Ollama sends it. */
export const json = (body: unknown, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: jsonContentType })

/** An error body the way Ollama sends it. */
export const error = (status: number, message: string): HttpServerResponse.HttpServerResponse =>
  json({ error: message }, status)

/** `Retry-After` in whole seconds (rounded up, at least 1) when the engine error carries a hint. */
export const withRetryAfter = (
  response: HttpServerResponse.HttpServerResponse,
  e: LlmError
): HttpServerResponse.HttpServerResponse =>
  e.retryAfterMs === undefined
    ? response
    : HttpServerResponse.setHeader(response, "retry-after", String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))))

/** An engine error as Ollama's error body, with the status an Ollama client expects (the error's `status`). */
export const fromError = (e: LlmError): HttpServerResponse.HttpServerResponse =>
  withRetryAfter(error(e.status, e.message), e)

const line = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value) + "\n")

/** The `{"error": msg}` line that ends an NDJSON stream failing after its first chunk. */
export const errorLine = (e: LlmError): Uint8Array => line({ error: e.message })

/**
 * Streams `chunks` as NDJSON. The first chunk is pulled before the response starts, so a failure before it
 * becomes a proper status; a failure after it becomes one `{"error"}` line and the stream ends without
 * `done`, as Ollama does. Needs the request's Scope (the server keeps it open while the body is written).
 */
export const ndjson = <A>(
  chunks: Stream.Stream<A, LlmError>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scope.Scope> =>
  Effect.gen(function* () {
    // Stream.toPull rather than Stream.peel: in effect 3.22.4 the rest of a peeled stream turns a failure
    // into a ChannelException defect, which would skip the error line below.
    const pull = yield* Stream.toPull(chunks)
    const first = yield* Effect.either(pull)
    if (Either.isLeft(first) && Option.isSome(first.left)) return fromError(first.left.value)
    const head = Either.getOrElse(first, () => Chunk.empty<A>())
    const body = Stream.concat(
      Stream.fromChunk(head),
      Either.isLeft(first) ? Stream.empty : Stream.repeatEffectChunkOption(pull)
    ).pipe(
      Stream.map(line),
      Stream.catchAll((e) => Stream.succeed(errorLine(e)))
    )
    return HttpServerResponse.stream(body, { contentType: "application/x-ndjson" })
  })
