/**
 * How the gateway answers in Ollama's own shapes: JSON bodies with `application/json; charset=utf-8`,
 * errors as `{"error": msg}` with the status Ollama would use, and NDJSON streams that send nothing
 * (not even the status) until the first chunk exists, exactly like Ollama, so an error that happens
 * before the first chunk still gets its real status code: a route opens its stream first (`Llm.chatStreamOpen`,
 * which waits in the line as a plain Effect and fails before the first chunk) and only then builds the response.
 * An answer (or chunk) that came from Ollama as it is forwarded as the text it came as (Ollama/Wire.ts), not
 * written as JSON again.
 */
import { HttpServerResponse } from "@effect/platform"
import { Stream } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import * as Wire from "../Ollama/Wire.js"

const jsonContentType = "application/json; charset=utf-8"
const encoder = new TextEncoder()

/** The JSON text of a value: the text it came from Ollama as, else written. */
const textOf = (value: unknown): string => Wire.textOf(value) ?? JSON.stringify(value)

/** A JSON body the way Ollama sends it. */
export const json = (body: unknown, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(textOf(body), { status, contentType: jsonContentType })

/**
 * `response` with `headers` added, one `setHeader` each. Not `HttpServerResponse.setHeaders`: it builds the new
 * headers as an object literal spreading the old ones, and on Node 20 (V8 11) every header added after such a
 * spread makes a fresh hidden class in old space, on every call (Observability/Track.ts `upstream` says more).
 */
export const withHeaders = (
  response: HttpServerResponse.HttpServerResponse,
  headers: Readonly<Record<string, string>>
): HttpServerResponse.HttpServerResponse => {
  let out = response
  for (const name in headers) out = HttpServerResponse.setHeader(out, name, headers[name]!)
  return out
}

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

const line = (value: unknown): Uint8Array => encoder.encode(textOf(value) + "\n")

/** The `{"error": msg}` line that ends an NDJSON stream failing after its first chunk. */
export const errorLine = (e: LlmError): Uint8Array => line({ error: e.message })

/**
 * Streams the chunks of an opened stream (their first one already at hand, `Llm.chatStreamOpen`) as NDJSON. A
 * failure becomes one `{"error"}` line and the stream ends without `done`, as Ollama does.
 */
export const ndjson = <A>(rest: Stream.Stream<A, LlmError>): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.stream(
    rest.pipe(
      Stream.map(line),
      Stream.catchAll((e) => Stream.succeed(errorLine(e)))
    ),
    { contentType: "application/x-ndjson" }
  )
