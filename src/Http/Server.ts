/**
 * The gateway's HTTP server: Ollama's API, OpenAI's API (`/v1`, docs/gateway.md), Sluice's own batch and agent
 * APIs (`/batches`, `/agents`) and /health on one router, served by Node's http server on
 * loopback by default. Unknown paths answer 404 `404 page not found`, as Ollama does. Every request is measured
 * (route, status, duration) and traced (an incoming `traceparent` becomes the parent span); there is no
 * per-request access log line on this hot path: the metrics and traces carry it. The server listens before the
 * app is attached (the rest of the gateway builds in between): until then, and again once it is detached at shutdown,
 * every request is answered 503 with Retry-After by `Provisional.untilServed`, never left hanging.
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Chunk, Context, type Duration, Effect, Layer, Ref } from "effect"
import type { Server as NodeServer } from "node:http"
import * as Shutdown from "../Lifecycle/Shutdown.js"
import { Backends } from "../Llm/Backends.js"
import * as Slots from "../Llm/Scheduler/Slots.js"
import { Readiness } from "../Observability/Health.js"
import * as HealthConfig from "../Observability/HealthConfig.js"
import * as InitialSamples from "../Observability/InitialSamples.js"
import * as Telemetry from "../Observability/Telemetry.js"
import * as Track from "../Observability/Track.js"
import * as AgentRoutes from "./AgentRoutes.js"
import * as Auth from "./Auth.js"
import { BatchJobs } from "./BatchJobs.js"
import * as BatchRoutes from "./BatchRoutes.js"
import * as Deadline from "./Deadline.js"
import * as Front from "./Front.js"
import * as Guard from "./Guard.js"
import * as HealthRoutes from "./HealthRoutes.js"
import * as ModelRoutes from "./ModelRoutes.js"
import * as ObservabilityRoutes from "./ObservabilityRoutes.js"
import * as OllamaRoutes from "./OllamaRoutes.js"
import * as OpenAiRoutes from "./OpenAiRoutes.js"
import * as OpenResponses from "./OpenResponses.js"
import * as Overhead from "./Overhead.js"
import * as Provisional from "./Provisional.js"
import * as RootFibers from "./RootFibers.js"

const notFound = HttpServerResponse.text("404 page not found", {
  status: 404,
  contentType: "text/plain; charset=utf-8"
})

/** Every route of the gateway. */
const router = HttpRouter.concatAll(
  OllamaRoutes.routes,
  ModelRoutes.routes,
  OpenAiRoutes.routes,
  HealthRoutes.routes,
  ObservabilityRoutes.routes,
  BatchRoutes.routes,
  AgentRoutes.routes
)

/** The router's answer: its route's, or a 404 for anything else. */
const routed = router.pipe(Effect.catchTag("RouteNotFound", () => Effect.succeed(notFound)))

/** The inference routes: static paths whose handlers read no route parameters (see `app`). */
const hotPaths: ReadonlyArray<string> = [
  "/api/chat",
  "/api/generate",
  "/api/embed",
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings"
]

type Routed = Effect.Effect<HttpServerResponse.HttpServerResponse, never, Effect.Effect.Context<typeof routed>>

const hotRoutes = new Map<string, { readonly path: string; readonly handler: Routed }>()
for (const route of Chunk.toReadonlyArray(router.routes))
  if (route.method === "POST" && hotPaths.includes(route.path))
    // the route's handler type asks for the router's RouteContext, which these handlers never read
    hotRoutes.set(route.path, { path: route.path, handler: route.handler as unknown as Routed })

/**
 * The gateway as an HttpApp (routes plus a 404 for anything else). A POST to an inference route (exact path, no
 * query) goes straight to its handler, interruptible as the router runs it and with the same `http.route` span
 * attribute: the router copies the whole request context (every service of the gateway) and looks the path up on
 * every request, for handlers that need neither route parameters nor the parsed query.
 */
export const app: Routed = Effect.withFiberRuntime((fiber) => {
  const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
  const route = request.method === "POST" ? hotRoutes.get(request.url) : undefined
  if (route === undefined) return routed
  const span = fiber.currentSpan
  if (span?._tag === "Span") span.attribute("http.route", route.path)
  return Effect.interruptible(route.handler)
})

export interface Options {
  readonly port: number
  readonly host: string
  /** How long requests in flight may take to finish at shutdown. */
  readonly drainTimeout?: Duration.DurationInput
}

/** Readiness turns false the moment the drain starts. */
const readiness = Layer.effect(
  Readiness,
  Effect.map(Shutdown.Drain, (drain) => ({ shuttingDown: drain.draining }))
)

/** Metric labels: the known routes of both API families. */
const route = Track.routeOf([...Track.gatewayRoutes, ...OpenAiRoutes.paths, ...ModelRoutes.paths])

/** The label values known at start, for the metrics' first samples: backends, required models, routes, priorities. */
const known = Effect.gen(function* () {
  const backends = yield* Backends
  const { chatModels, embedModels } = yield* HealthConfig.requirements
  const routes = Chunk.toReadonlyArray(router.routes).flatMap(({ method, path }) =>
    method !== "*" && route(path) === path ? [{ route: path, method }] : []
  )
  return { backends: backends.all.map((b) => b.url), chatModels, embedModels, routes, priorities: Slots.priorities }
})

/**
 * The gateway served with its middleware: traced (its server span), measured, stamped (request id, overhead) and
 * drained at shutdown (Front.ts), then authenticated (Auth.ts). Its routes see the timed engine and catalog
 * (`Overhead.layer`), built once.
 */
const served = Layer.unwrapEffect(
  Effect.map(Effect.zip(Shutdown.Drain, Auth.Auth), ([drain, auth]) =>
    HttpServer.serve(app, (inner) => Front.middleware(drain, route)(Auth.middleware(auth)(inner)))
  )
).pipe(Layer.provide(Guard.layerConfig), Layer.provide(Overhead.layer))

/**
 * Serves the gateway; the HttpServer it provides tells the bound address (port 0 picks a free one). On close,
 * requests in flight drain first (Lifecycle/Shutdown.ts), then the server closes. The agent routes need
 * `AgentRuns` provided from outside (else they answer 503); API batches run in `BatchJobs`, over the engine.
 * Before it listens, every metric gets its first samples (Observability/InitialSamples.ts).
 */
export const layer = (options: Options) => {
  let created: NodeServer | undefined = undefined
  const create = () => (created = Provisional.untilServed(Guard.createServer()))
  // the drain waits for the answers it ended to be written out (OpenResponses.ts)
  const flushed = Layer.effectDiscard(
    Effect.flatMap(Shutdown.Drain, (drain) =>
      Ref.set(
        drain.flushed,
        Effect.suspend(() => (created === undefined ? Effect.void : OpenResponses.settled(created)))
      )
    )
  )
  return Shutdown.onClose.pipe(
    Layer.provideMerge(flushed),
    Layer.provideMerge(served),
    Layer.provideMerge(Deadline.layer),
    Layer.provideMerge(RootFibers.layer),
    Layer.provideMerge(Auth.layer({ host: options.host })),
    Layer.provideMerge(HealthRoutes.layer()),
    Layer.provideMerge(BatchJobs.Default),
    Layer.provideMerge(ModelRoutes.layer),
    Layer.provideMerge(readiness),
    Layer.provideMerge(
      Shutdown.layer(options.drainTimeout === undefined ? {} : { drainTimeout: options.drainTimeout })
    ),
    Telemetry.serverTracing,
    HttpServer.withLogAddress,
    Layer.provideMerge(NodeHttpServer.layer(create, options)),
    InitialSamples.around(known)
  )
}
