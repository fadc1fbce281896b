/**
 * Tracing end to end: a client's `traceparent` -> the gateway's server span -> the engine -> the HTTP call to
 * the backend (the simulator, an Effect HTTP server that reads `traceparent` too), exported over OTLP/JSON to
 * an in-process collector. And the trace id in log lines.
 */
import { HttpClient, HttpClientRequest, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Either, Layer, Logger, LogLevel, Option, Schedule } from "effect"
import { createServer, request, type Server as NodeServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as Logging from "../../src/Observability/Logging.js"
import * as Telemetry from "../../src/Observability/Telemetry.js"
import * as Server from "../../src/Http/Server.js"
import { BackendInfo } from "../../src/Lifecycle/BackendChoice.js"
import * as Engine from "../../src/Llm/Engine.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"

interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly attributes: ReadonlyArray<{ key: string; value: { stringValue?: string } }>
}

const serverKind = 2
const clientKind = 3

/** A tiny OTLP/HTTP JSON collector on a random port. */
const collector = Effect.acquireRelease(
  Effect.async<{ url: string; spans: Array<OtlpSpan>; services: Set<string>; server: NodeServer }>((resume) => {
    const spans: Array<OtlpSpan> = []
    const services = new Set<string>()
    const server = createServer((req, res) => {
      let body = ""
      req.on("data", (chunk) => (body += chunk))
      req.on("end", () => {
        const data = JSON.parse(body)
        for (const rs of data.resourceSpans) {
          for (const a of rs.resource.attributes) if (a.key === "service.name") services.add(a.value.stringValue)
          for (const ss of rs.scopeSpans) spans.push(...ss.spans)
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, spans, services, server }))
    })
  }),
  (c) => Effect.async<void>((resume) => void c.server.close(() => resume(Effect.void)))
)

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
const parentId = "00f067aa0ba902b7"
const traceparent = `00-${traceId}-${parentId}-01`

const attribute = (span: OtlpSpan, key: string) => span.attributes.find((a) => a.key === key)?.value.stringValue

/** A pass-through proxy in front of the backend that records the `traceparent` of each request it forwards. */
const recordingProxy = (target: string) =>
  Effect.acquireRelease(
    Effect.async<{ url: string; seen: Array<{ path: string; traceparent: string | undefined }>; server: NodeServer }>(
      (resume) => {
        const seen: Array<{ path: string; traceparent: string | undefined }> = []
        const server = createServer((req, res) => {
          seen.push({ path: req.url ?? "", traceparent: req.headers.traceparent as string | undefined })
          const upstream = request(
            new URL(req.url ?? "/", target),
            { method: req.method, headers: req.headers },
            (r) => {
              res.writeHead(r.statusCode ?? 502, r.headers)
              r.pipe(res)
            }
          )
          req.pipe(upstream)
        })
        server.listen(0, "127.0.0.1", () => {
          resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }))
        })
      }
    ),
    (p) => Effect.async<void>((resume) => void p.server.close(() => resume(Effect.void)))
  )

/** Simulator <- recording proxy <- engine <- gateway (with `serverTracing`); returns the gateway URL and the proxy. */
const tracedGateway = Effect.gen(function* () {
  const sim = yield* Simulator
  const proxy = yield* recordingProxy(sim.url)
  const context = yield* Layer.build(
    Telemetry.serverTracing(Server.layer({ port: 0, host: "127.0.0.1" })).pipe(
      Layer.provide(Engine.layer({ backends: [{ url: proxy.url }] })),
      Layer.provide(Layer.succeed(BackendInfo, { kind: "simulator", urls: [proxy.url], requested: ["test"] }))
    )
  )
  const address = Context.get(context, HttpServer.HttpServer).address
  return { url: address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : "", proxy }
})

describe("Telemetry", () => {
  it.scopedLive("one trace from the gateway request to the backend, with the incoming traceparent honoured", () =>
    Effect.gen(function* () {
      const c = yield* collector
      const exporter = Telemetry.layerOtlp({ url: Telemetry.tracesUrl(c.url), exportInterval: "50 millis" })
      // the exporter's scope closes after the request (and after the servers), which flushes it
      const seen = yield* Effect.gen(function* () {
        const gateway = yield* tracedGateway
        const response = yield* Effect.promise(() =>
          fetch(`${gateway.url}/api/chat`, {
            method: "POST",
            headers: { traceparent, "content-type": "application/json" },
            body: JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: "hi" }], stream: false })
          })
        )
        assert.strictEqual(response.status, 200)
        yield* Effect.promise(() => response.text())
        // the server span ends once the body is written: wait for the exporter to send it (every 50 ms)
        yield* Effect.suspend(() =>
          c.spans.some((s) => s.parentSpanId === parentId) ? Effect.void : Effect.fail("not yet")
        ).pipe(Effect.retry(Schedule.spaced("20 millis")), Effect.timeout("5 seconds"), Effect.ignore)
        return gateway.proxy.seen
      }).pipe(Effect.scoped, Effect.provide(Simulator.layerTest(fast())), Effect.provide(exporter))

      assert.deepStrictEqual([...c.services], ["sluice"])
      const trace = c.spans.filter((s) => s.traceId === traceId)
      const gatewaySpan = trace.find((s) => s.kind === serverKind && s.parentSpanId === parentId)
      assert.isDefined(gatewaySpan, "the gateway's span is a child of the caller's span")
      assert.strictEqual(gatewaySpan!.name, "http POST /api/chat")
      assert.isDefined(
        trace.find((s) => s.name === "OllamaClient.chat"),
        "the engine's call to the backend is in the same trace"
      )
      const upstream = trace.find((s) => s.kind === clientKind && attribute(s, "url.path") === "/api/chat")
      assert.isDefined(upstream, "the HTTP client span to the backend is in the same trace")
      // the backend received a traceparent naming the client span, in the caller's trace
      const chat = seen.find((r) => r.path === "/api/chat")
      assert.strictEqual(chat?.traceparent, `00-${traceId}-${upstream!.spanId}-01`)
      // the spans link up: upstream call -> ... -> gateway span -> caller
      const byId = new Map(trace.map((s) => [s.spanId, s]))
      let span: OtlpSpan | undefined = upstream
      while (span !== undefined && span.parentSpanId !== parentId) span = byId.get(span.parentSpanId ?? "")
      assert.strictEqual(span, gatewaySpan, "the upstream call descends from the gateway span")
    })
  )

  it.scopedLive("a log line written while serving a request carries the caller's trace id", () =>
    Effect.gen(function* () {
      const lines: Array<Record<string, unknown>> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.map(Logging.jsonLogger, (line) => void lines.push(JSON.parse(line)))
      )
      const app = HttpRouter.empty.pipe(
        HttpRouter.post(
          "/api/chat",
          Effect.as(
            Effect.logInfo("answering").pipe(Effect.annotateLogs("messages", "secret prompt")),
            HttpServerResponse.empty()
          )
        )
      )
      const server = HttpServer.serve(app).pipe(Layer.provideMerge(NodeHttpServer.layerTest), Layer.provide(capture))
      yield* Effect.gen(function* () {
        const response = yield* HttpClient.execute(
          HttpClientRequest.post("/api/chat").pipe(HttpClientRequest.setHeader("traceparent", traceparent))
        ).pipe(Effect.withTracerEnabled(false))
        assert.strictEqual(response.status, 204)
      }).pipe(Effect.provide(server), Effect.scoped)

      const line = lines.find((l) => l.message === "answering")
      assert.isDefined(line)
      assert.strictEqual(line!.trace_id, traceId)
      assert.match(String(line!.span_id), /^[0-9a-f]{16}$/)
      assert.notStrictEqual(line!.span_id, parentId)
      assert.strictEqual(line!.level, "info")
      assert.strictEqual(line!.messages, "[redacted]", "no prompt text at info")
    })
  )
})

describe("Logging", () => {
  it.effect("JSON lines: level, message, trace ids, annotations, log spans; text kept at debug", () =>
    Effect.gen(function* () {
      const lines: Array<Record<string, unknown>> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.map(Logging.jsonLogger, (line) => void lines.push(JSON.parse(line)))
      )
      const parent = Option.getOrThrow(Telemetry.parentFrom({ traceparent } as never))
      yield* Effect.gen(function* () {
        yield* Effect.logWarning("slow backend").pipe(Effect.annotateLogs({ backend: "http://b1" }))
        yield* Effect.logDebug("prompt").pipe(Effect.annotateLogs({ prompt: "kept at debug" }))
      }).pipe(
        Effect.withLogSpan("call"),
        Effect.withSpan("Llm.chat"),
        Telemetry.withParentFrom({ traceparent } as never),
        Effect.provide(capture),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
      assert.strictEqual(parent.traceId, traceId)
      const [warning, debug] = lines
      assert.strictEqual(warning!.level, "warn")
      assert.strictEqual(warning!.message, "slow backend")
      assert.strictEqual(warning!.backend, "http://b1")
      assert.strictEqual(warning!.trace_id, traceId)
      assert.property(warning!.spans, "call")
      assert.strictEqual(debug!.prompt, "kept at debug")
    })
  )

  it.effect("settings: OTLP endpoint from SLUICE_ or OTEL_ variables, none without; log level by name", () =>
    Effect.gen(function* () {
      const withEnv = (env: Record<string, string>) =>
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      const url = (env: Record<string, string>) =>
        Effect.map(
          withEnv(env)(Telemetry.optionsFromEnv()),
          Option.map((o) => o.url)
        )
      assert.deepStrictEqual(yield* url({}), Option.none())
      assert.deepStrictEqual(
        yield* url({ SLUICE_OTLP_ENDPOINT: "http://c:4318" }),
        Option.some("http://c:4318/v1/traces")
      )
      assert.deepStrictEqual(
        yield* url({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://o:4318/", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t/x" }),
        Option.some("http://t/x")
      )
      assert.deepStrictEqual(
        yield* url({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://o:4318/" }),
        Option.some("http://o:4318/v1/traces")
      )
      assert.deepStrictEqual(yield* url({ SLUICE_OTLP_ENDPOINT: "http://c", OTEL_SDK_DISABLED: "true" }), Option.none())

      const level = (text: string) => withEnv({ L: text })(Effect.either(Logging.levelConfig("L")))
      assert.deepStrictEqual(yield* level("WARN"), Either.right(LogLevel.Warning))
      assert.deepStrictEqual(yield* level("debug"), Either.right(LogLevel.Debug))
      assert.isTrue(Either.isLeft(yield* level("loud")))
    })
  )

  it("levels and endpoints from settings", () => {
    assert.strictEqual(Telemetry.tracesUrl("http://c:4318"), "http://c:4318/v1/traces")
    assert.strictEqual(Telemetry.tracesUrl("http://c:4318/v1/traces"), "http://c:4318/v1/traces")
    assert.deepStrictEqual(Telemetry.parseHeaders("Authorization=Bearer%20x, x-team = a"), {
      authorization: "Bearer x",
      "x-team": "a"
    })
  })
})
