/**
 * One exchange with an Ollama server over an `HttpClient`: send, check the status, then read a JSON value,
 * nothing, or an NDJSON stream; every failure becomes an `OllamaError` and every call gets a span
 * `OllamaClient.<method>` with the backend and the model (never prompt text).
 *
 * Interruption aborts the request: @effect/platform's HttpClient passes an AbortSignal to undici and aborts it
 * when the calling fiber is interrupted or when the response stream's scope closes (a consumer that stops early),
 * so Ollama sees the socket close and stops generating (reference pitfall 8).
 *
 * This is the path of every stream, of any `HttpClient` given to `OllamaClient.make`, and of unary calls while a
 * tracer exports spans (its client span and `traceparent` header); other unary calls take Direct.ts.
 */
import { HttpClientRequest, type HttpClient, type HttpClientResponse } from "@effect/platform"
import { Clock, Effect, Either, type Schema, Stream } from "effect"
import type { OllamaError } from "../Domain/LlmError.js"
import type { Decode } from "./Decode.js"
import { type CallContext, type Deadlines, decodeError, fromHttpClientError, fromStatus } from "./ErrorMapping.js"
import { decodeLines } from "./Ndjson.js"
import * as Wire from "./Wire.js"

/** Which client method is calling, and for which model ("" when none). */
export interface Call {
  readonly method: string
  readonly model?: string | undefined
}

/** An HTTP request to the server: the path under the base URL and, for POST and DELETE, a JSON body. */
export interface Request {
  readonly verb: "GET" | "POST" | "DELETE"
  readonly path: string
  readonly body?: object | undefined
}

/** The exchanges the client methods are made of. */
export interface Transport {
  readonly json: <A>(call: Call, request: Request, decode: Decode<A>) => Effect.Effect<A, OllamaError>
  readonly unit: (call: Call, request: Request) => Effect.Effect<void, OllamaError>
  readonly stream: <A, I>(
    call: Call,
    request: Request,
    schema: Schema.Schema<A, I>,
    isLast: (value: A) => boolean
  ) => Stream.Stream<A, OllamaError>
}

export const isOk = (status: number) => status >= 200 && status < 300

/** The call's context for its errors. */
export const contextOf = (backend: string, call: Call): CallContext => ({
  backend,
  method: call.method,
  model: call.model ?? ""
})

/**
 * The value `decode` makes of a body's text, or the DecodeError saying why not; `bytes` (the body's length on the
 * wire, when known) and its text are noted for the value (Wire.ts).
 */
export const decodeBody = <A>(
  ctx: CallContext,
  text: string,
  decode: Decode<A>,
  bytes?: number
): Either.Either<A, OllamaError> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Either.left(decodeError(ctx, `the body is not JSON: ${error instanceof Error ? error.message : error}`))
  }
  const decoded = decode(json)
  if (Either.isLeft(decoded)) return Either.left(decodeError(ctx, decoded.left))
  Wire.note(decoded.right, text, bytes)
  return Either.right(decoded.right)
}

const toHttp = (request: Request): HttpClientRequest.HttpClientRequest => {
  const base = HttpClientRequest.make(request.verb)(request.path).pipe(HttpClientRequest.acceptJson)
  return request.body === undefined ? base : HttpClientRequest.bodyUnsafeJson(base, request.body)
}

/** Builds the exchanges over `http`, which already points at `backend`. */
export const make = (http: HttpClient.HttpClient, backend: string, deadlines: Deadlines): Transport => {
  // No stack trace captured per span: it costs an Error per call and points into the engine, not the caller.
  const spanOf = (call: Call) => ({
    kind: "client" as const,
    captureStackTrace: false,
    attributes: { backend, ...(call.model === undefined ? {} : { model: call.model }) }
  })

  const readText = (ctx: CallContext, response: HttpClientResponse.HttpClientResponse) =>
    Effect.mapError(response.text, fromHttpClientError(ctx, deadlines))

  const failStatus = (ctx: CallContext, response: HttpClientResponse.HttpClientResponse) =>
    Effect.flatMap(Effect.zip(readText(ctx, response), Clock.currentTimeMillis), ([body, now]) =>
      Effect.fail(fromStatus(ctx, response.status, response.headers, body, now))
    )

  const send = (
    ctx: CallContext,
    request: Request
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, OllamaError> =>
    http.execute(toHttp(request)).pipe(
      Effect.mapError(fromHttpClientError(ctx, deadlines)),
      Effect.flatMap((response) => (isOk(response.status) ? Effect.succeed(response) : failStatus(ctx, response)))
    )

  const json = <A>(call: Call, request: Request, decode: Decode<A>) => {
    const ctx = contextOf(backend, call)
    return send(ctx, request).pipe(
      Effect.flatMap((response) => readText(ctx, response)),
      Effect.flatMap((text) => decodeBody(ctx, text, decode)),
      Effect.withSpan(`OllamaClient.${call.method}`, spanOf(call))
    )
  }

  const unit = (call: Call, request: Request) => {
    const ctx = contextOf(backend, call)
    return send(ctx, request).pipe(
      Effect.flatMap((response) => readText(ctx, response)),
      Effect.asVoid,
      Effect.withSpan(`OllamaClient.${call.method}`, spanOf(call))
    )
  }

  const stream = <A, I>(call: Call, request: Request, schema: Schema.Schema<A, I>, isLast: (value: A) => boolean) => {
    const ctx = contextOf(backend, call)
    return Stream.unwrap(
      Effect.map(send(ctx, request), (response) =>
        response.stream.pipe(Stream.mapError(fromHttpClientError(ctx, deadlines)), decodeLines(ctx, schema, isLast))
      )
    ).pipe(Stream.withSpan(`OllamaClient.${call.method}`, spanOf(call)))
  }

  return { json, unit, stream }
}
