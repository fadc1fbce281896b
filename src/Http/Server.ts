/**
 * The gateway's HTTP server: Ollama's API and /health on one router, served by Node's http server on
 * loopback by default. Unknown paths answer 404 `404 page not found`, as Ollama does. Every request is measured
 * (route, status, duration) and traced (an incoming `traceparent` becomes the parent span); there is no
 * per-request access log line on this hot path: the metrics and traces carry it.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import * as Telemetry from "../Observability/Telemetry.js"
import * as Track from "../Observability/Track.js"
import * as HealthRoutes from "./HealthRoutes.js"
import * as ObservabilityRoutes from "./ObservabilityRoutes.js"
import * as OllamaRoutes from "./OllamaRoutes.js"

const notFound = HttpServerResponse.text("404 page not found", {
  status: 404,
  contentType: "text/plain; charset=utf-8"
})

/** The gateway as an HttpApp (routes plus a 404 for anything else). */
export const app = HttpRouter.concatAll(OllamaRoutes.routes, HealthRoutes.routes, ObservabilityRoutes.routes).pipe(
  Effect.catchTag("RouteNotFound", () => Effect.succeed(notFound))
)

/** Serves the gateway; the HttpServer it provides tells the bound address (port 0 picks a free one). */
export const layer = (options: { readonly port: number; readonly host: string }) =>
  HttpServer.serve(app, Track.http()).pipe(
    Telemetry.serverTracing,
    HttpServer.withLogAddress,
    Layer.provideMerge(NodeHttpServer.layer(createServer, options))
  )
