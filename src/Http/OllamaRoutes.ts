/**
 * Ollama's own API, served by the gateway through the engine (`Llm` for inference, `Catalog` for the model
 * reads across backends): existing Ollama clients point their URL here and change nothing else. Bodies are validated with the wire Schemas first; answers
 * keep Ollama's exact shapes, statuses and streaming (chunk by chunk, nothing buffered). A client that
 * disconnects interrupts its handler, which aborts the upstream request, so the backend stops generating.
 * Unary answers say how they were produced: `x-sluice-cache` (hit, miss, coalesced, refresh, bypass) and
 * `x-sluice-served` (primary, stale, default, alternate:<model>).
 *
 * The model-management writes (pull, push, create, copy, delete, blobs) are forwarded by ModelRoutes.ts, for keys
 * with the admin scope.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Context, Effect } from "effect"
import type { Schema, Scope, Stream } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import { ChatRequest } from "../Domain/Chat.js"
import { GenerateRequest } from "../Domain/Generate.js"
import { EmbeddingsRequest, EmbedRequest } from "../Domain/Embed.js"
import { ShowRequest } from "../Domain/Models.js"
import { Catalog } from "../Llm/Catalog.js"
import { type CallOptions, Llm, type Served } from "../Llm/Llm.js"
import * as Auth from "./Auth.js"
import { type BadRequest, decodeBody } from "./Body.js"
import * as BodyErrors from "./BodyErrors.js"
import * as Deadline from "./Deadline.js"
import * as Respond from "./Respond.js"

const running = HttpServerResponse.text("Ollama is running", { contentType: "text/plain; charset=utf-8" })

type Failure = LlmError | BadRequest

const toResponse = (e: Failure) => (e._tag === "BadRequest" ? Respond.error(e.status, e.message) : Respond.fromError(e))

/** Answers every failure in Ollama's error shape; nothing escapes as a defect or a 500 by accident. */
const handle = <R>(effect: Effect.Effect<HttpServerResponse.HttpServerResponse, Failure, R>) =>
  Effect.catchAll(effect, (e) => Effect.succeed(toResponse(e)))

/** Answers a catalog read as JSON. */
const read = <A, R>(f: (catalog: Catalog) => Effect.Effect<A, Failure, R>) =>
  handle(Effect.flatMap(Catalog, (catalog) => Effect.map(f(catalog), (body) => Respond.json(body))))

/** A unary engine answer as JSON, with how it was produced in headers. */
const served = <A>(answer: Served<A>) =>
  Respond.withHeaders(Respond.json(answer.value), {
    "x-sluice-cache": answer.lookup,
    "x-sluice-served": answer.served
  })

/** Declares that `effect` needs the engine, which it reads from its fiber's context itself. */
const needsLlm = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | Llm> => effect

/** Streams unless the request says `stream: false` (Ollama's default is to stream). */
const inference = <Req extends { readonly stream?: boolean }, I, A>(
  schema: Schema.Schema<Req, I>,
  once: (llm: Llm, req: Req, options: CallOptions) => Effect.Effect<Served<A>, LlmError>,
  open: (llm: Llm, req: Req, options: CallOptions) => Effect.Effect<Stream.Stream<A, LlmError>, LlmError, Scope.Scope>
) => {
  const decode = decodeBody(schema, BodyErrors.ollama(), { plain: true })
  return handle(
    // the engine and the key's options read in place (every inference request passes here); `needsLlm` keeps the
    // engine in the handler's type
    needsLlm(
      Effect.withFiberRuntime((fiber) => {
        const llm = Context.unsafeGet(fiber.currentContext, Llm)
        const options = Auth.callOptionsIn(fiber.currentContext)
        // a unary call still running at the drain deadline ends its request (Deadline.ts); a stream is cut by the
        // drain. A stream is opened first (it waits in the line as an Effect, like a unary call), then answered.
        return Effect.flatMap(decode, (req) =>
          req.stream === false
            ? Effect.map(Deadline.untilDeadline(once(llm, req, options)), served)
            : Effect.map(open(llm, req, options), Respond.ndjson)
        )
      })
    )
  )
}

/** Ollama's one sentence for any wrong `input` on /api/embed. */
const embedRefusal = BodyErrors.ollama({ input: "invalid input type" })

const decodeEmbed = decodeBody(EmbedRequest, embedRefusal)

/** `/api/embed` through the engine (cached, retried, batched later). */
const embed = handle(
  Effect.gen(function* () {
    const llm = yield* Llm
    const req = yield* decodeEmbed
    return served(yield* llm.embedServed(req, yield* Auth.callOptions))
  })
)

export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/", Effect.succeed(running)),
  HttpRouter.head("/", Effect.succeed(running)),
  HttpRouter.get(
    "/api/version",
    read((c) => c.version)
  ),
  HttpRouter.head(
    "/api/version",
    read((c) => c.version)
  ),
  HttpRouter.get(
    "/api/tags",
    read((c) => c.list)
  ),
  HttpRouter.head(
    "/api/tags",
    read((c) => c.list)
  ),
  HttpRouter.get(
    "/api/ps",
    read((c) => c.ps)
  ),
  HttpRouter.post(
    "/api/show",
    read((c) => Effect.flatMap(decodeBody(ShowRequest), c.show))
  ),
  HttpRouter.post(
    "/api/chat",
    inference(
      ChatRequest,
      (llm, req, options) => llm.chatServed(req, options),
      (llm, req, options) => llm.chatStreamOpen(req, options)
    )
  ),
  HttpRouter.post(
    "/api/generate",
    inference(
      GenerateRequest,
      (llm, req, options) => llm.generateServed(req, options),
      (llm, req, options) => llm.generateStreamOpen(req, options)
    )
  ),
  HttpRouter.post("/api/embed", embed),
  HttpRouter.post(
    "/api/embeddings",
    read((c) => Effect.flatMap(decodeBody(EmbeddingsRequest), c.embeddings))
  )
)
