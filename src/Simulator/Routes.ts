/**
 * The simulator's router: Ollama's native routes plus the `/_sim/` control API, on @effect/platform's
 * HttpRouter. Every route counts its requests; the inference routes also count client disconnects (the
 * socket closed before the response ended) and carry out the `reset` fault by destroying the socket.
 * A known path with the wrong method answers 405; an unknown path 404 `404 page not found` (Gin's text).
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Effect } from "effect"
import * as Blobs from "./BlobRoutes.js"
import * as Chat from "./ChatRoutes.js"
import * as Control from "./ControlRoutes.js"
import * as Embed from "./EmbedRoutes.js"
import type { State } from "./State.js"
import * as Models from "./ModelRoutes.js"
import type { ApiError, ResetConnection } from "./Wire.js"
import { respond } from "./Wire.js"

type Response = HttpServerResponse.HttpServerResponse

/** Counts the request and answers an `ApiError` as Ollama's error body. */
const counted =
  (state: State, route: string) =>
  <R>(handler: Effect.Effect<Response, ApiError, R>): Effect.Effect<Response, never, R> =>
    Effect.suspend(() => {
      state.stats.request(route)
      return respond(state.stats, handler)
    })

/** `counted`, plus disconnect counting and the `reset` fault. */
const inference =
  (state: State, route: string) =>
  <R>(handler: Effect.Effect<Response, ApiError | ResetConnection, R>) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      state.stats.request(route)
      const response = NodeHttpServerRequest.toServerResponse(request)
      let reset = false
      response.once("close", () => {
        if (!response.writableEnded && !reset) state.stats.disconnects++
      })
      const withReset = Effect.catchTag(handler, "ResetConnection", () => {
        reset = true
        NodeHttpServerRequest.toIncomingMessage(request).socket.destroy()
        return Effect.never
      })
      return respond(state.stats, withReset)
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
  "/api/push",
  "/_sim/stats",
  "/_sim/faults",
  "/_sim/reset"
])

const textPlain = { contentType: "text/plain; charset=utf-8" }

const notFound = Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
  const path = request.url.split("?")[0]!
  return knownPaths.has(path) || path.startsWith("/api/blobs/")
    ? HttpServerResponse.text("405 method not allowed", { ...textPlain, status: 405 })
    : HttpServerResponse.text("404 page not found", { ...textPlain, status: 404 })
})

/** The simulator's HTTP app. */
export const make = (state: State) =>
  Effect.map(HttpRouter.toHttpApp(router(state)), (app) => Effect.catchTag(app, "RouteNotFound", () => notFound))

const router = (state: State) => {
  const route = (path: string) => counted(state, path)
  const infer = (path: string) => inference(state, path)
  return HttpRouter.empty.pipe(
    HttpRouter.get("/", route("/")(Effect.succeed(Models.root))),
    HttpRouter.get("/api/version", route("/api/version")(Effect.sync(() => Models.version(state)))),
    HttpRouter.get("/api/tags", route("/api/tags")(Models.tags(state))),
    HttpRouter.post("/api/show", route("/api/show")(Models.show(state))),
    HttpRouter.get("/api/ps", route("/api/ps")(Models.ps(state))),
    HttpRouter.post("/api/chat", infer("/api/chat")(Chat.chat(state))),
    HttpRouter.post("/api/generate", infer("/api/generate")(Chat.generate(state))),
    HttpRouter.post("/api/embed", infer("/api/embed")(Embed.embed(state))),
    HttpRouter.post("/api/embeddings", infer("/api/embeddings")(Embed.embeddings(state))),
    HttpRouter.post("/api/pull", route("/api/pull")(Models.pull(state))),
    HttpRouter.post("/api/create", route("/api/create")(Models.create(state))),
    HttpRouter.post("/api/copy", route("/api/copy")(Models.copy(state))),
    HttpRouter.del("/api/delete", route("/api/delete")(Models.remove(state))),
    HttpRouter.post("/api/push", route("/api/push")(Models.push(state))),
    HttpRouter.head("/api/blobs/:digest", route("/api/blobs")(Blobs.head(state))),
    HttpRouter.post("/api/blobs/:digest", route("/api/blobs")(Blobs.create(state))),
    HttpRouter.get("/_sim/stats", Control.stats(state)),
    HttpRouter.get("/_sim/faults", Control.getFaults(state)),
    HttpRouter.put("/_sim/faults", respond(state.stats, Control.putFaults(state))),
    HttpRouter.post("/_sim/reset", Control.reset(state))
  )
}
