/**
 * Ollama's own API, served by the gateway and forwarded through `OllamaClient`: existing Ollama clients
 * point their URL here and change nothing else. Bodies are validated with the wire Schemas first; answers
 * keep Ollama's exact shapes, statuses and streaming (chunk by chunk, nothing buffered). A client that
 * disconnects interrupts its handler, which aborts the upstream request, so the backend stops generating.
 *
 * The model-management writes (pull, push, create, copy, delete) are not exposed through the gateway:
 * they change a shared server and belong behind an admin key (see the gateway issue).
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import type { Schema, Stream } from "effect"
import type { OllamaError } from "../Domain/LlmError.js"
import { ChatRequest } from "../Domain/Chat.js"
import { GenerateRequest } from "../Domain/Generate.js"
import { EmbeddingsRequest, EmbedRequest } from "../Domain/Embed.js"
import { ShowRequest } from "../Domain/Models.js"
import { OllamaClient } from "../Ollama/OllamaClient.js"
import { type BadRequest, decodeBody } from "./Body.js"
import * as Respond from "./Respond.js"

const running = HttpServerResponse.text("Ollama is running", { contentType: "text/plain; charset=utf-8" })

type Failure = OllamaError | BadRequest

const toResponse = (e: Failure) => (e._tag === "BadRequest" ? Respond.error(400, e.message) : Respond.fromError(e))

/** Answers every failure in Ollama's error shape; nothing escapes as a defect or a 500 by accident. */
const handle = <R>(effect: Effect.Effect<HttpServerResponse.HttpServerResponse, Failure, R>) =>
  Effect.catchAll(effect, (e) => Effect.succeed(toResponse(e)))

/** Calls the client and answers its result as JSON. */
const call = <A, R>(f: (client: OllamaClient.Service) => Effect.Effect<A, Failure, R>) =>
  handle(Effect.flatMap(OllamaClient, (client) => Effect.map(f(client), (body) => Respond.json(body))))

/** Streams unless the request says `stream: false` (Ollama's default is to stream). */
const inference = <Req extends { readonly stream?: boolean }, I, A>(
  schema: Schema.Schema<Req, I>,
  once: (client: OllamaClient.Service, req: Req) => Effect.Effect<A, OllamaError>,
  stream: (client: OllamaClient.Service, req: Req) => Stream.Stream<A, OllamaError>
) =>
  handle(
    Effect.gen(function* () {
      const client = yield* OllamaClient
      const req = yield* decodeBody(schema)
      return req.stream === false ? Respond.json(yield* once(client, req)) : yield* Respond.ndjson(stream(client, req))
    })
  )

export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/", Effect.succeed(running)),
  HttpRouter.head("/", Effect.succeed(running)),
  HttpRouter.get(
    "/api/version",
    call((c) => c.version)
  ),
  HttpRouter.head(
    "/api/version",
    call((c) => c.version)
  ),
  HttpRouter.get(
    "/api/tags",
    call((c) => c.list)
  ),
  HttpRouter.head(
    "/api/tags",
    call((c) => c.list)
  ),
  HttpRouter.get(
    "/api/ps",
    call((c) => c.ps)
  ),
  HttpRouter.post(
    "/api/show",
    call((c) => Effect.flatMap(decodeBody(ShowRequest), c.show))
  ),
  HttpRouter.post(
    "/api/chat",
    inference(
      ChatRequest,
      (c, req) => c.chat(req),
      (c, req) => c.chatStream(req)
    )
  ),
  HttpRouter.post(
    "/api/generate",
    inference(
      GenerateRequest,
      (c, req) => c.generate(req),
      (c, req) => c.generateStream(req)
    )
  ),
  HttpRouter.post(
    "/api/embed",
    call((c) => Effect.flatMap(decodeBody(EmbedRequest), c.embed))
  ),
  HttpRouter.post(
    "/api/embeddings",
    call((c) => Effect.flatMap(decodeBody(EmbeddingsRequest), c.embeddings))
  )
)
