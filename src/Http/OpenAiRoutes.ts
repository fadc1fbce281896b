/**
 * OpenAI's API as Ollama serves it (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`,
 * `/v1/models/{model}`), served through the same engine as Ollama's own routes: clients built on OpenAI's SDKs point
 * their base URL at `<gateway>/v1` and change nothing else.
 *
 * A body is guarded and validated (Guard.ts, OpenAiApi.ts), translated to the engine's Ollama-shaped request
 * (OpenAiRequest.ts), answered by `Llm` or `Catalog`, and translated back (OpenAiResponse.ts). Streams are SSE
 * (OpenAiReply.ts); `stream` is off unless the request says `true`, as with OpenAI. Every failure answers in
 * OpenAI's error envelope with the status Ollama would use. A client that disconnects interrupts its handler (or its
 * stream), which aborts the upstream call. Unary answers carry `x-sluice-cache` and `x-sluice-served`.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import { Catalog } from "../Llm/Catalog.js"
import { Llm, type Served } from "../Llm/Llm.js"
import { decodeBody } from "./Body.js"
import * as BodyErrors from "./BodyErrors.js"
import * as Deadline from "./Deadline.js"
import type { BadRequest } from "./Guard.js"
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "./OpenAiApi.js"
import * as OpenAiRequest from "./OpenAiRequest.js"
import * as OpenAiReply from "./OpenAiReply.js"
import * as OpenAiResponse from "./OpenAiResponse.js"
import * as Respond from "./Respond.js"
import * as Auth from "./Auth.js"

/** The paths these routes serve (for the gateway's metrics; `/v1/models/{model}` is left out: unbounded). */
export const paths: ReadonlyArray<string> = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"]

type Failure = LlmError | BadRequest

/** Answers every failure in OpenAI's envelope; nothing escapes as a defect or a 500 by accident. */
const handle = <R>(effect: Effect.Effect<HttpServerResponse.HttpServerResponse, Failure, R>) =>
  Effect.catchAll(effect, (e) => Effect.succeed(OpenAiReply.fromFailure(e)))

/** A unary answer as JSON, with how the engine produced it in headers. */
const served = <A>(body: unknown, answer: Served<A>) =>
  Respond.json(body).pipe(
    HttpServerResponse.setHeader("x-sluice-cache", answer.lookup),
    HttpServerResponse.setHeader("x-sluice-served", answer.served)
  )

// the body decoders are built once (each call of decodeBody compiles its schema's parser)
const decodeChatCompletionRequest = decodeBody(ChatCompletionRequest, BodyErrors.openAi, { plain: true })
const decodeCompletionRequest = decodeBody(CompletionRequest, BodyErrors.openAi, { plain: true })
const decodeEmbeddingRequest = decodeBody(EmbeddingRequest, BodyErrors.openAi)

const chat = handle(
  Effect.gen(function* () {
    const llm = yield* Llm
    const options = yield* Auth.callOptions
    const body = yield* decodeChatCompletionRequest
    const req = yield* OpenAiRequest.chat(body)
    const meta = yield* OpenAiResponse.meta("chatcmpl")
    if (body.stream === true) {
      const includeUsage = body.stream_options?.include_usage === true
      // opened first (it waits in the line as an Effect, like a unary call), then answered
      return OpenAiReply.sse(OpenAiResponse.chatChunks(meta, includeUsage)(yield* llm.chatStreamOpen(req, options)))
    }
    // a unary call still running at the drain deadline ends with ShuttingDown; a stream is cut by the drain
    const answer = yield* Deadline.untilDeadline(llm.chatServed(req, options))
    return served(OpenAiResponse.chatCompletion(meta, answer.value), answer)
  })
)

const completions = handle(
  Effect.gen(function* () {
    const llm = yield* Llm
    const options = yield* Auth.callOptions
    const body = yield* decodeCompletionRequest
    const req = OpenAiRequest.completion(body)
    const meta = yield* OpenAiResponse.meta("cmpl")
    if (body.stream === true) {
      const includeUsage = body.stream_options?.include_usage === true
      return OpenAiReply.sse(
        OpenAiResponse.completionChunks(meta, includeUsage)(yield* llm.generateStreamOpen(req, options))
      )
    }
    const answer = yield* Deadline.untilDeadline(llm.generateServed(req, options))
    return served(OpenAiResponse.completion(meta, answer.value), answer)
  })
)

const embeddings = handle(
  Effect.gen(function* () {
    const llm = yield* Llm
    const options = yield* Auth.callOptions
    const { encoding, req } = yield* Effect.flatMap(decodeEmbeddingRequest, OpenAiRequest.embedding)
    const answer = yield* Deadline.untilDeadline(llm.embedServed(req, options))
    return served(OpenAiResponse.embeddings(answer.value, encoding), answer)
  })
)

const list = handle(
  Effect.flatMap(Catalog, (catalog) =>
    Effect.map(catalog.list, (tags) => Respond.json(OpenAiResponse.models(tags.models)))
  )
)

const prefix = "/v1/models/"

/** `/v1/models/{model}`: the name is the rest of the path (it may hold a namespace's `/`). */
const retrieve = handle(
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = request.url.split("?")[0]!
    const name = yield* Effect.try({
      try: () => decodeURIComponent(path.slice(prefix.length)),
      catch: () => new Error("bad escape")
    }).pipe(Effect.orElseSucceed(() => path.slice(prefix.length)))
    const catalog = yield* Catalog
    const show = yield* catalog.show({ model: name })
    return Respond.json(OpenAiResponse.model(name, show.modified_at))
  })
)

export const routes = HttpRouter.empty.pipe(
  HttpRouter.post("/v1/chat/completions", chat),
  HttpRouter.post("/v1/completions", completions),
  HttpRouter.post("/v1/embeddings", embeddings),
  HttpRouter.get("/v1/models", list),
  HttpRouter.get("/v1/models/*", retrieve)
)
