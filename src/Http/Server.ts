/**
 * The gateway's HTTP server: Ollama's API and /health on one router, served by Node's http server on
 * loopback by default. Unknown paths answer 404 `404 page not found`, as Ollama does. There is no per-request
 * access log on this hot path yet; request metrics come with the observability issue.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import * as HealthRoutes from "./HealthRoutes.js"
import * as OllamaRoutes from "./OllamaRoutes.js"

const notFound = HttpServerResponse.text("404 page not found", {
  status: 404,
  contentType: "text/plain; charset=utf-8"
})

/** The gateway as an HttpApp (routes plus a 404 for anything else). */
export const app = HttpRouter.concat(OllamaRoutes.routes, HealthRoutes.routes).pipe(
  Effect.catchTag("RouteNotFound", () => Effect.succeed(notFound))
)

/** Serves the gateway; the HttpServer it provides tells the bound address (port 0 picks a free one). */
export const layer = (options: { readonly port: number; readonly host: string }) =>
  HttpServer.serve(app).pipe(HttpServer.withLogAddress, Layer.provideMerge(NodeHttpServer.layer(createServer, options)))
