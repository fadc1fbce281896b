/**
 * How the gateway reaches the backends for model management (ModelRoutes.ts): raw HTTP exchanges with one backend,
 * their answers relayed to the client, and the backends a request targets (ModelTargets.ts).
 *
 * Choices:
 * - Raw passthrough over a pool of its own (Ollama/Pool.ts), not `OllamaClient`: the backend's status, content type
 *   and body reach the client as the backend sent them (Ollama's own words and codes, a 404 `model 'x' not found`
 *   stays one), progress lines are forwarded as they arrive without being decoded, and a blob's body streams
 *   through. `OllamaClient` turns answers into the engine's error family and has no blob endpoints.
 * - The pool's deadlines suit long transfers: 10 s to connect, no deadline on the response headers (a non-streamed
 *   pull answers when its download ends), at most 10 minutes of silence between two body chunks.
 * - Only the body and its content type and length are forwarded, never the client's headers: its `Authorization`
 *   holds a Sluice key, not the backend's. A backend configured with `user:pw@` gets its own `Authorization: Basic`
 *   (`Backend.authorization`), as the engine's client sends it.
 * - A backend that cannot be reached answers as the engine's transport errors do (502, or 504 on a timeout), with
 *   the backend in the message.
 */
import {
  HttpClient,
  type HttpClientError,
  HttpClientRequest,
  type HttpClientResponse,
  HttpServerResponse
} from "@effect/platform"
import { Context, Effect, Layer, Stream } from "effect"
import type { OllamaError } from "../Domain/LlmError.js"
import { type Backend, Backends } from "../Llm/Backends.js"
import { errorText, fromHttpClientError } from "../Ollama/ErrorMapping.js"
import * as Pool from "../Ollama/Pool.js"

/** The pool's settings (see the module comment). */
export const poolOptions: Pool.Options = {
  connections: 8,
  connectTimeout: "10 seconds",
  headersTimeout: 0,
  bodyTimeout: "10 minutes"
}

/** What one backend answered, read whole: its status, content type and body. */
export interface Answer {
  readonly backend: string
  readonly status: number
  readonly contentType: string | undefined
  readonly body: Uint8Array
}

const decoder = new TextDecoder()
const encoder = new TextEncoder()

/** The message of an answer: the `error` of an Ollama error body, else its text. */
export const messageOf = (answer: Answer): string => errorText(answer.status, decoder.decode(answer.body))

export const isOk = (status: number) => status >= 200 && status < 300

/** A backend that did not answer, as an answer: the transport error's status and `{"error"}` body. */
const unreachable = (backend: string, e: OllamaError): Answer => ({
  backend,
  status: e.status,
  contentType: "application/json; charset=utf-8",
  body: encoder.encode(JSON.stringify({ error: e.message }))
})

/** Relays an answer to the client as it is (an empty body stays empty, as Ollama's 200 on copy and delete). */
export const relay = (answer: Answer): HttpServerResponse.HttpServerResponse =>
  answer.body.length === 0
    ? HttpServerResponse.empty({ status: answer.status, headers: { "content-length": "0" } })
    : HttpServerResponse.uint8Array(answer.body, {
        status: answer.status,
        ...(answer.contentType === undefined ? {} : { contentType: answer.contentType })
      })

/** A JSON request to a backend path, its body as given (unknown fields kept). */
export const post = (path: string, body: unknown) =>
  HttpClientRequest.post(path).pipe(HttpClientRequest.bodyUnsafeJson(body), HttpClientRequest.acceptJson)

export class ModelForward extends Effect.Service<ModelForward>()("sluice/ModelForward", {
  scoped: Effect.gen(function* () {
    const backends = yield* Backends
    const http = Context.get(yield* Layer.build(Pool.layerHttpClient(poolOptions)), HttpClient.HttpClient)
    const deadlines = Pool.resolve(poolOptions)
    const failed = (backend: Backend) => (e: HttpClientError.HttpClientError) =>
      unreachable(backend.url, fromHttpClientError({ backend: backend.url, method: "manage", model: "" }, deadlines)(e))

    /** Sends `request` (a path) to `backend`; a transport failure is an answer too (`Left`). */
    const open = (backend: Backend, request: HttpClientRequest.HttpClientRequest) =>
      http
        .execute(
          HttpClientRequest.prependUrl(
            backend.authorization === undefined
              ? request
              : HttpClientRequest.setHeader(request, "authorization", backend.authorization),
            backend.url
          )
        )
        .pipe(Effect.mapError(failed(backend)), Effect.either)

    /** Reads a response whole (failures to read become the transport's answer). */
    const read = (backend: Backend, response: HttpClientResponse.HttpClientResponse) =>
      response.arrayBuffer.pipe(
        Effect.map((buffer): Answer => ({
          backend: backend.url,
          status: response.status,
          contentType: response.headers["content-type"],
          body: new Uint8Array(buffer)
        })),
        Effect.catchAll((e) => Effect.succeed(failed(backend)(e)))
      )

    /** One whole exchange with `backend`. */
    const exchange = (backend: Backend, request: HttpClientRequest.HttpClientRequest): Effect.Effect<Answer> =>
      Effect.flatMap(open(backend, request), (result) =>
        result._tag === "Left" ? Effect.succeed(result.left) : read(backend, result.right)
      )

    /** The body of a streaming response as text lines (a read failure ends it with the transport's message). */
    const lines = (backend: Backend, response: HttpClientResponse.HttpClientResponse) =>
      response.stream.pipe(
        Stream.mapError((e) => messageOf(failed(backend)(e))),
        Stream.decodeText(),
        Stream.splitLines,
        Stream.filter((line) => line.trim() !== "")
      )

    return { backends, open, read, exchange, lines } as const
  })
}) {}
