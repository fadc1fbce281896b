/**
 * Tracing: where spans go, and how a trace crosses the gateway.
 *
 * - Export: when `SLUICE_OTLP_ENDPOINT` (`/v1/traces` appended), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as
 *   is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended) is set, in that order of precedence, spans go to that OTLP/HTTP collector as JSON
 *   through @effect/opentelemetry's `OtlpTracer`: no OTel SDK, batches every 5 s, flushed when the layer's scope
 *   closes (shutdown). `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`) adds headers, `OTEL_SERVICE_NAME` overrides
 *   the service name "sluice", `OTEL_SDK_DISABLED=true` turns export off. Otherwise nothing is exported: Effect's
 *   built-in tracer still makes spans (cheap, in memory), so trace ids still reach logs and Ollama.
 * - Incoming: the gateway reads W3C `traceparent` (then b3, x-b3-*) with
 *   `HttpTraceContext.fromHeaders` and makes it the parent of the request's server span, named by route
 *   (`serverTracing`); `/metrics` and the health probes are untraced. While spans are exported that span is
 *   @effect/platform's `HttpMiddleware.tracer` (URL, header and status attributes); otherwise a bare one.
 * - Outgoing: @effect/platform's `HttpClient` makes a client span per request and sends `traceparent` and `b3`
 *   headers with it (FiberRef `currentTracerPropagation`, on by default), so every call to Ollama carries the
 *   trace of the gateway request that caused it. The OTLP exporter's own requests run with the tracer off.
 * - Logs: `Logging.ts` adds `trace_id` and `span_id` of the current span to every line.
 */
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import { FetchHttpClient, type HttpApp, HttpMiddleware, HttpServerRequest, HttpTraceContext } from "@effect/platform"
import type { Headers } from "@effect/platform"
import {
  Clock,
  Config,
  Context,
  Duration,
  Effect,
  type Exit,
  type Fiber,
  FiberRef,
  Layer,
  Option,
  Tracer
} from "effect"
import * as Spans from "./Spans.js"
import { routeOf } from "./Track.js"

export interface Options {
  /** The collector's traces URL, e.g. `http://localhost:4318/v1/traces`. */
  readonly url: string
  readonly serviceName?: string | undefined
  readonly serviceVersion?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** How often batches are sent; default 5 seconds. */
  readonly exportInterval?: Duration.DurationInput | undefined
}

/** `base` with `/v1/traces` appended, as the OTLP spec says for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
export const tracesUrl = (base: string): string =>
  base.endsWith("/v1/traces") ? base : `${base.replace(/\/+$/, "")}/v1/traces`

/** Parses `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values URL-encoded). */
export const parseHeaders = (text: string): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const part of text.split(",")) {
    const at = part.indexOf("=")
    if (at <= 0) continue
    headers[part.slice(0, at).trim().toLowerCase()] = decodeURIComponent(part.slice(at + 1).trim())
  }
  return headers
}

/** Exports every span to an OTLP/HTTP (JSON) collector. */
export const layerOtlp = (options: Options): Layer.Layer<never> =>
  OtlpTracer.layer({
    url: options.url,
    resource: { serviceName: options.serviceName ?? "sluice", serviceVersion: options.serviceVersion },
    headers: options.headers,
    exportInterval: options.exportInterval ?? Duration.seconds(5)
  }).pipe(Layer.provide(OtlpSerialization.layerJson), Layer.provide(FetchHttpClient.layer))

const optionalString = (name: string) => Config.option(Config.nonEmptyString(name))

/** The export settings from the environment, or None when no endpoint is set (or OTEL_SDK_DISABLED=true). */
export const optionsFromEnv = (serviceVersion?: string): Effect.Effect<Option.Option<Options>, never> =>
  Effect.gen(function* () {
    const disabled = yield* Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false))
    const sluice = yield* optionalString("SLUICE_OTLP_ENDPOINT")
    const traces = yield* optionalString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    const base = yield* optionalString("OTEL_EXPORTER_OTLP_ENDPOINT")
    const headers = yield* optionalString("OTEL_EXPORTER_OTLP_HEADERS")
    const serviceName = yield* Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault("sluice"))
    // SLUICE_ first; then, as the OTel spec says, the traces-specific endpoint before the generic one
    const url = Option.map(sluice, tracesUrl).pipe(
      Option.orElse(() => traces),
      Option.orElse(() => Option.map(base, tracesUrl))
    )
    if (disabled || Option.isNone(url)) return Option.none()
    return Option.some({
      url: url.value,
      serviceName,
      serviceVersion,
      headers: Option.match(headers, { onNone: () => undefined, onSome: parseHeaders })
    })
  }).pipe(Effect.orDie)

/** OTLP export when configured in the environment, else nothing (Effect's in-memory tracer). */
export const layer = (serviceVersion?: string): Layer.Layer<never> =>
  Layer.unwrapEffect(
    Effect.map(optionsFromEnv(serviceVersion), (options) =>
      Option.match(options, {
        onNone: () => Layer.empty,
        onSome: (o) => Layer.merge(layerOtlp(o), Layer.effectDiscard(Effect.logInfo(`exporting traces to ${o.url}`)))
      })
    )
  )

/** Paths that get no server span (scrapes and probes would drown the traces). */
export const untracedPaths: ReadonlyArray<string> = ["/metrics", "/health/live", "/health/ready"]

const untraced = (req: HttpServerRequest.HttpServerRequest): boolean =>
  untracedPaths.includes(req.url.split("?")[0] ?? req.url)

/**
 * For the gateway's server layer: server spans named `http <METHOD> <route>` (bounded: unknown paths are
 * "other") and no spans for `untracedPaths`. `Server.layer(...).pipe(Telemetry.serverTracing)`. While spans are
 * exported (Spans.ts, seen as the layer is built) they are @effect/platform's `HttpMiddleware.tracer`, with its
 * attributes (URL, headers, status); otherwise the platform's tracer is off and the gateway makes them (`startServerSpan`).
 */
export const serverTracing = <A, E, R>(server: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  Layer.unwrapEffect(
    Effect.withFiberRuntime((fiber) => {
      const exported = Spans.exported(fiber)
      return Effect.succeed(
        server.pipe(
          HttpMiddleware.withSpanNameGenerator(spanName),
          HttpMiddleware.withTracerDisabledWhen((req) => !exported || untraced(req))
        )
      )
    })
  )

const route = routeOf()
const spanName = (req: HttpServerRequest.HttpServerRequest) => `http ${req.method} ${route(req.url)}`

/**
 * The server span of a gateway request whose platform tracer is off (`serverTracing`, while nothing is exported)
 * and whose path is traced, for the caller to set as the request's parent span (`Tracer.ParentSpan`); `undefined`
 * for the others (the platform's tracer makes theirs, or they get none). Nobody reads such a span but for its ids
 * (logs, `traceparent` to Ollama), so it is made bare, child of the caller's `traceparent` (or b3), in the caller's
 * synchronous step: the platform's tracer cost ~40 Effect steps and a URL parse per request (bench/gateway). The
 * caller ends it (`endServerSpan`) when the request ends.
 */
export const startServerSpan = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  request: HttpServerRequest.HttpServerRequest
): Tracer.Span | undefined => {
  if (
    untraced(request) ||
    !fiber.getFiberRef(HttpMiddleware.currentTracerDisabledWhen)(request) ||
    !fiber.getFiberRef(FiberRef.currentTracerEnabled)
  )
    return undefined
  const services = fiber.currentDefaultServices
  return Context.get(services, Tracer.Tracer).span(
    spanName(request),
    HttpTraceContext.fromHeaders(request.headers),
    Context.empty(),
    [],
    Context.get(services, Clock.Clock).unsafeCurrentTimeNanos(),
    "server",
    { captureStackTrace: false }
  )
}

/** Ends a span of `startServerSpan` with the request's exit. */
export const endServerSpan = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  span: Tracer.Span,
  exit: Exit.Exit<unknown, unknown>
): void => span.end(Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeNanos(), exit)

/** A server span for `app` as `startServerSpan` makes it, for an HttpApp served outside the gateway's middleware. */
export const serverSpan = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.withFiberRuntime((fiber) => {
    const span = startServerSpan(fiber, Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest))
    return span === undefined
      ? app
      : Effect.onExit(Effect.withParentSpan(app, span), (exit) => Effect.sync(() => endServerSpan(fiber, span, exit)))
  })

/** The parent span a caller sent (W3C `traceparent`, else b3), for entry points outside `HttpServer.serve`. */
export const parentFrom = (headers: Headers.Headers): Option.Option<Tracer.ExternalSpan> =>
  HttpTraceContext.fromHeaders(headers)

/** Runs `effect` as a child of the trace in `headers`, if they carry one. */
export const withParentFrom =
  (headers: Headers.Headers) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Option.match(parentFrom(headers), { onNone: () => effect, onSome: (span) => Effect.withParentSpan(effect, span) })

/** The current trace and span ids, if a span is running (e.g. for an `x-sluice-trace-id` header). */
export const currentTrace: Effect.Effect<Option.Option<{ readonly traceId: string; readonly spanId: string }>> =
  Effect.map(Effect.option(Effect.currentSpan), (span) =>
    Option.map(span, (s) => ({ traceId: s.traceId, spanId: s.spanId }))
  )
