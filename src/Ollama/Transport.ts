/**
 * One exchange with an Ollama server over an `HttpClient`: send, check the status, then read a JSON value,
 * nothing, or an NDJSON stream; every failure becomes an `OllamaError` and every call gets a span
 * `OllamaClient.<method>` with the backend and the model (never prompt text).
 *
 * Interruption aborts the request: @effect/platform's HttpClient passes an AbortSignal to undici and aborts it
 * when the calling fiber is interrupted or when the response stream's scope closes (a consumer that stops early),
 * so Ollama sees the socket close and stops generating (reference pitfall 8).
 */
import type { HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { Clock, Effect, type Schema, Stream } from "effect"
import type { OllamaError } from "../Domain/LlmError.js"
import { type CallContext, type Deadlines, fromHttpClientError, fromStatus } from "./ErrorMapping.js"
import { decodeLines, decodeValue, parseJson } from "./Ndjson.js"

/** Which client method is calling, and for which model ("" when none). */
export interface Call {
  readonly method: string
  readonly model?: string | undefined
}

/** The exchanges the client methods are made of. */
export interface Transport {
  readonly json: <A, I>(
    call: Call,
    request: HttpClientRequest.HttpClientRequest,
    schema: Schema.Schema<A, I>
  ) => Effect.Effect<A, OllamaError>
  readonly unit: (call: Call, request: HttpClientRequest.HttpClientRequest) => Effect.Effect<void, OllamaError>
  readonly stream: <A, I>(
    call: Call,
    request: HttpClientRequest.HttpClientRequest,
    schema: Schema.Schema<A, I>,
    isLast: (value: A) => boolean
  ) => Stream.Stream<A, OllamaError>
}

const isOk = (status: number) => status >= 200 && status < 300

/** Builds the exchanges over `http`, which already points at `backend`. */
export const make = (http: HttpClient.HttpClient, backend: string, deadlines: Deadlines): Transport => {
  const context = (call: Call): CallContext => ({ backend, method: call.method, model: call.model ?? "" })

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
    request: HttpClientRequest.HttpClientRequest
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, OllamaError> =>
    http.execute(request).pipe(
      Effect.mapError(fromHttpClientError(ctx, deadlines)),
      Effect.flatMap((response) => (isOk(response.status) ? Effect.succeed(response) : failStatus(ctx, response)))
    )

  const json = <A, I>(call: Call, request: HttpClientRequest.HttpClientRequest, schema: Schema.Schema<A, I>) => {
    const ctx = context(call)
    const decode = decodeValue(ctx, schema, "the body")
    return send(ctx, request).pipe(
      Effect.flatMap((response) => readText(ctx, response)),
      Effect.flatMap((text) => parseJson(ctx, "the body", text)),
      Effect.flatMap(decode),
      Effect.withSpan(`OllamaClient.${call.method}`, spanOf(call))
    )
  }

  const unit = (call: Call, request: HttpClientRequest.HttpClientRequest) => {
    const ctx = context(call)
    return send(ctx, request).pipe(
      Effect.flatMap((response) => readText(ctx, response)),
      Effect.asVoid,
      Effect.withSpan(`OllamaClient.${call.method}`, spanOf(call))
    )
  }

  const stream = <A, I>(
    call: Call,
    request: HttpClientRequest.HttpClientRequest,
    schema: Schema.Schema<A, I>,
    isLast: (value: A) => boolean
  ) => {
    const ctx = context(call)
    return Stream.unwrap(
      Effect.map(send(ctx, request), (response) =>
        response.stream.pipe(Stream.mapError(fromHttpClientError(ctx, deadlines)), decodeLines(ctx, schema, isLast))
      )
    ).pipe(Stream.withSpan(`OllamaClient.${call.method}`, spanOf(call)))
  }

  return { json, unit, stream }
}
