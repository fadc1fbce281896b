/**
 * The simulator's router: Ollama's native routes plus the `/_sim/` control API, on @effect/platform's
 * HttpRouter. Every route counts its requests; the inference routes also count client disconnects (the
 * socket closed before the response ended) and carry out the `reset` fault by destroying the socket.
 * A known path with the wrong method answers 405; an unknown path 404 `404 page not found` (Gin's text).
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Effect } from "effect"
import * as Chat from "./ChatRoutes.js"
import * as Control from "./ControlRoutes.js"
import * as Embed from "./EmbedRoutes.js"
import type { Engine } from "./Engine.js"
import * as Models from "./ModelRoutes.js"
import type { ApiError, ResetConnection } from "./Wire.js"
import { respond } from "./Wire.js"

type Response = HttpServerResponse.HttpServerResponse

/** Counts the request and answers an `ApiError` as Ollama's error body. */
const counted =
  (engine: Engine, route: string) =>
  <R>(handler: Effect.Effect<Response, ApiError, R>): Effect.Effect<Response, never, R> =>
    Effect.suspend(() => {
      engine.stats.request(route)
      return respond(engine.stats, handler)
    })

/** `counted`, plus disconnect counting and the `reset` fault. */
const inference =
  (engine: Engine, route: string) =>
  <R>(handler: Effect.Effect<Response, ApiError | ResetConnection, R>) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      engine.stats.request(route)
      const response = NodeHttpServerRequest.toServerResponse(request)
      let reset = false
      response.once("close", () => {
        if (!response.writableEnded && !reset) engine.stats.disconnects++
      })
      const withReset = Effect.catchTag(handler, "ResetConnection", () => {
        reset = true
        NodeHttpServerRequest.toIncomingMessage(request).socket.destroy()
        return Effect.never
      })
      return respond(engine.stats, withReset)
    })

const knownPaths = new Set([
  "/",
  "/api/version",
  "/api/tags",
  "/api/show",
  "/api/ps",
  "/api/chat",
  "/api/generate",
  "/api/embed",
  "/api/embeddings",
  "/api/pull",
  "/api/create",
  "/api/copy",
  "/api/delete",
  "/_sim/stats",
  "/_sim/faults",
  "/_sim/reset"
])

const textPlain = { contentType: "text/plain; charset=utf-8" }

const notFound = Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
  const path = request.url.split("?")[0]!
  return knownPaths.has(path)
    ? HttpServerResponse.text("405 method not allowed", { ...textPlain, status: 405 })
    : HttpServerResponse.text("404 page not found", { ...textPlain, status: 404 })
})

/** The simulator's HTTP app. */
export const make = (engine: Engine) =>
  Effect.map(HttpRouter.toHttpApp(router(engine)), (app) => Effect.catchTag(app, "RouteNotFound", () => notFound))

const router = (engine: Engine) => {
  const route = (path: string) => counted(engine, path)
  const infer = (path: string) => inference(engine, path)
  return HttpRouter.empty.pipe(
    HttpRouter.get("/", route("/")(Effect.succeed(Models.root))),
    HttpRouter.get("/api/version", route("/api/version")(Effect.sync(() => Models.version(engine)))),
    HttpRouter.get("/api/tags", route("/api/tags")(Models.tags(engine))),
    HttpRouter.post("/api/show", route("/api/show")(Models.show(engine))),
    HttpRouter.get("/api/ps", route("/api/ps")(Models.ps(engine))),
    HttpRouter.post("/api/chat", infer("/api/chat")(Chat.chat(engine))),
    HttpRouter.post("/api/generate", infer("/api/generate")(Chat.generate(engine))),
    HttpRouter.post("/api/embed", infer("/api/embed")(Embed.embed(engine))),
    HttpRouter.post("/api/embeddings", infer("/api/embeddings")(Embed.embeddings(engine))),
    HttpRouter.post("/api/pull", route("/api/pull")(Models.pull(engine))),
    HttpRouter.post("/api/create", route("/api/create")(Models.create(engine))),
    HttpRouter.post("/api/copy", route("/api/copy")(Models.copy(engine))),
    HttpRouter.del("/api/delete", route("/api/delete")(Models.remove(engine))),
    HttpRouter.get("/_sim/stats", Control.stats(engine)),
    HttpRouter.get("/_sim/faults", Control.getFaults(engine)),
    HttpRouter.put("/_sim/faults", respond(engine.stats, Control.putFaults(engine))),
    HttpRouter.post("/_sim/reset", Control.reset(engine))
  )
}
