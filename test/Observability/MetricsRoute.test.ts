/**
 * `/metrics` through a real server on a random port, after the recorders were called and the sampler read a
 * fake engine (cache counters, an open breaker): at least 40 `sluice_` series, with the values moving.
 */
import { HttpClient, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Ref, Stream } from "effect"
import * as ObservabilityRoutes from "../../src/Http/ObservabilityRoutes.js"
import * as Prometheus from "../../src/Observability/Prometheus.js"
import * as Recorders from "../../src/Observability/Recorders.js"
import * as Sampler from "../../src/Observability/Sampler.js"
import * as Track from "../../src/Observability/Track.js"

const backend = "http://b1:11434"

const fakeEngine = Effect.gen(function* () {
  const cache = yield* Ref.make<Sampler.CacheCounts>({
    hits: 3,
    misses: 2,
    staleServed: 1,
    evictions: 0,
    coalesced: 1,
    refreshes: 0,
    bypasses: 0,
    entries: 2,
    bytes: 512
  })
  const breaker = yield* Ref.make<Sampler.BreakerStats>({ state: "open", trips: 1, rejections: 4, transitions: 1 })
  const sources: Sampler.Sources = {
    cache: Ref.get(cache),
    backends: [
      {
        url: backend,
        slots: { snapshot: Effect.succeed({ limit: 8 }) },
        outstanding: Ref.make(2).pipe(Effect.flatten),
        breaker: { stats: Ref.get(breaker) },
        bucket: { snapshot: Effect.succeed({ requests: 5, tokens: undefined, waiting: 1 }) },
        models: Effect.succeed(new Set(["llama3.2:latest"]))
      }
    ],
    queue: Effect.succeed({ depth: { interactive: 0, normal: 3, batch: 7 }, capacity: 100 })
  }
  return { cache, breaker, sources }
})

/** A mixed workload through the recorders: hits, misses, retries, errors, a fallback, a stream, HTTP. */
const workload = Effect.all(
  [
    Recorders.recordRequest({ model: "llama3.2", endpoint: "chat", outcome: "ok", durationMs: 120 }),
    Recorders.recordRequest({ model: "llama3.2", endpoint: "chat", outcome: "fallback", durationMs: 80 }),
    Recorders.recordRequest({
      model: "nomic-embed-text",
      endpoint: "embed",
      priority: "batch",
      outcome: "error",
      durationMs: 5
    }),
    Recorders.recordUpstream({
      backend,
      model: "llama3.2",
      endpoint: "chat",
      outcome: "ok",
      durationMs: 900,
      firstTokenMs: 100,
      chunks: 41,
      tokensIn: 30,
      tokensOut: 40,
      evalDurationNs: 8e8
    }),
    Recorders.recordUpstream({ backend, model: "llama3.2", endpoint: "chat", outcome: "ServerBusy", durationMs: 3 }),
    Recorders.recordRetry("chat", { _tag: "ServerBusy" }),
    Recorders.recordError("embed", { _tag: "BudgetExceeded", limit: "tokens" }),
    Recorders.recordBudgetExhausted({ limit: "tokens" }),
    Recorders.recordFallback("chat", "alternate:qwen2.5"),
    Recorders.recordBatch("embed", 16),
    Recorders.rateLimitEvents(backend).waited,
    Recorders.rateLimitEvents(backend).rejected("requests"),
    Recorders.recordQueueWait("normal", 40),
    Recorders.recordQueueRejection("batch"),
    Recorders.recordAuthFailure("invalid"),
    Recorders.setHealth("backends", "degraded"),
    Recorders.setReady(true),
    Recorders.setBackendUp(backend, true),
    Recorders.setSchedulerLimit(backend, 6),
    Recorders.recordStartupCheck("backends-reachable", "fatal", true),
    Recorders.recordStartup(850),
    Recorders.recordBuildInfo("0.1.0"),
    Recorders.recordTick("planner", "ok", 30),
    Recorders.recordEpisode("planner", "done", 4000),
    Recorders.recordBusPublish("tasks")
  ],
  { discard: true }
)

const app = HttpRouter.empty.pipe(
  HttpRouter.get("/api/chat", Effect.succeed(HttpServerResponse.stream(Stream.make(new TextEncoder().encode("{}\n"))))),
  HttpRouter.concat(ObservabilityRoutes.routes)
)

const serve = (sources: Sampler.Sources) =>
  HttpServer.serve(Track.http()(app)).pipe(
    Layer.provide(Sampler.layer(Effect.succeed(sources))),
    Layer.provideMerge(NodeHttpServer.layerTest)
  )

const scrape = Effect.gen(function* () {
  const response = yield* HttpClient.get("/metrics")
  assert.strictEqual(response.status, 200)
  assert.strictEqual(response.headers["content-type"], Prometheus.contentType)
  return (yield* response.text).split("\n")
})

const sample = (lines: ReadonlyArray<string>, series: string) => {
  const line = lines.find((l) => l.startsWith(`${series} `))
  assert.isDefined(line, `no sample ${series}`)
  return Number(line!.slice(series.length + 1))
}

describe("GET /metrics", () => {
  it.scopedLive("serves >= 40 sluice_ series after a mixed workload, and the values move", () =>
    Effect.gen(function* () {
      const engine = yield* fakeEngine
      yield* workload
      yield* Layer.build(serve(engine.sources)).pipe(
        Effect.flatMap((context) =>
          Effect.gen(function* () {
            yield* HttpClient.get("/api/chat").pipe(Effect.flatMap((r) => r.text))
            yield* HttpClient.get("/nope")
            const first = yield* scrape

            const samples = first.filter((l) => l.startsWith("sluice_"))
            const series = new Set(
              samples.map((l) =>
                l
                  .split(" ")[0]!
                  .replace(/_(bucket|sum|count)\b/, "")
                  .replace(/,?le="[^"]*"/, "")
              )
            )
            assert.isAtLeast(series.size, 40, `only ${series.size} series`)

            assert.include(first, "# TYPE sluice_cache_hits_total counter")
            assert.include(first, "# TYPE sluice_llm_request_duration_seconds histogram")
            assert.strictEqual(sample(first, "sluice_cache_hits_total"), 3)
            assert.strictEqual(sample(first, "sluice_cache_bytes"), 512)
            const at = `{backend="${backend}"}`
            assert.strictEqual(sample(first, `sluice_breaker_state${at}`), 2)
            assert.strictEqual(sample(first, `sluice_breaker_rejections_total${at}`), 4)
            assert.strictEqual(sample(first, `sluice_backend_in_flight${at}`), 2)
            assert.strictEqual(sample(first, 'sluice_queue_depth{priority="batch"}'), 7)
            assert.strictEqual(
              sample(first, 'sluice_llm_tokens_out_total{backend="http://b1:11434",model="llama3.2:latest"}'),
              40
            )
            assert.strictEqual(
              sample(first, 'sluice_llm_tokens_per_second_sum{backend="http://b1:11434",model="llama3.2:latest"}'),
              50
            )
            assert.strictEqual(sample(first, 'sluice_llm_retries_total{endpoint="chat",kind="ServerBusy"}'), 1)
            assert.strictEqual(sample(first, 'sluice_llm_fallbacks_total{endpoint="chat",strategy="alternate"}'), 1)
            assert.strictEqual(sample(first, 'sluice_budget_exhausted_total{limit="tokens"}'), 1)
            assert.strictEqual(
              sample(first, 'sluice_http_requests_total{route="/api/chat",method="GET",status="200"}'),
              1
            )
            assert.strictEqual(sample(first, 'sluice_http_requests_total{route="other",method="GET",status="404"}'), 1)
            assert.isAbove(sample(first, "sluice_process_resident_memory_bytes"), 0)

            // the engine moves on: the counters follow by the difference, however often it was sampled
            yield* Ref.update(engine.cache, (c) => ({ ...c, hits: 10, evictions: 2 }))
            yield* Ref.set(engine.breaker, { state: "half-open" as const, trips: 1, rejections: 9, transitions: 2 })
            yield* Recorders.recordRetry("chat", { _tag: "ServerBusy" })
            const second = yield* scrape
            assert.strictEqual(sample(second, "sluice_cache_hits_total"), 10)
            assert.strictEqual(sample(second, "sluice_cache_evictions_total"), 2)
            assert.strictEqual(sample(second, `sluice_breaker_state${at}`), 1)
            assert.strictEqual(sample(second, `sluice_breaker_rejections_total${at}`), 9)
            assert.strictEqual(sample(second, `sluice_breaker_transitions_total${at}`), 2)
            assert.strictEqual(sample(second, 'sluice_llm_retries_total{endpoint="chat",kind="ServerBusy"}'), 2)
            assert.strictEqual(
              sample(second, 'sluice_http_requests_total{route="/metrics",method="GET",status="200"}'),
              1
            )
          }).pipe(Effect.provide(context))
        )
      )
    })
  )
})
