/**
 * `/metrics` through a real server on a random port carries the Node process metrics under prom-client's default
 * names (what stock Node.js dashboards query), with sane values, beside Sluice's own `sluice_process_*` ones, and
 * every family once.
 */
import { HttpClient, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as ObservabilityRoutes from "../../src/Http/ObservabilityRoutes.js"

/** prom-client's default metric names, and the type each has there. */
const stock: Readonly<Record<string, "counter" | "gauge" | "histogram">> = {
  process_cpu_user_seconds_total: "counter",
  process_cpu_system_seconds_total: "counter",
  process_cpu_seconds_total: "counter",
  process_start_time_seconds: "gauge",
  process_resident_memory_bytes: "gauge",
  process_virtual_memory_bytes: "gauge",
  process_heap_bytes: "gauge",
  process_open_fds: "gauge",
  process_max_fds: "gauge",
  nodejs_eventloop_lag_seconds: "gauge",
  nodejs_eventloop_lag_min_seconds: "gauge",
  nodejs_eventloop_lag_max_seconds: "gauge",
  nodejs_eventloop_lag_mean_seconds: "gauge",
  nodejs_eventloop_lag_stddev_seconds: "gauge",
  nodejs_eventloop_lag_p50_seconds: "gauge",
  nodejs_eventloop_lag_p90_seconds: "gauge",
  nodejs_eventloop_lag_p99_seconds: "gauge",
  nodejs_active_handles: "gauge",
  nodejs_active_handles_total: "gauge",
  nodejs_active_requests: "gauge",
  nodejs_active_requests_total: "gauge",
  nodejs_active_resources: "gauge",
  nodejs_active_resources_total: "gauge",
  nodejs_heap_size_total_bytes: "gauge",
  nodejs_heap_size_used_bytes: "gauge",
  nodejs_external_memory_bytes: "gauge",
  nodejs_heap_space_size_total_bytes: "gauge",
  nodejs_heap_space_size_used_bytes: "gauge",
  nodejs_heap_space_size_available_bytes: "gauge",
  nodejs_version_info: "gauge",
  nodejs_gc_duration_seconds: "histogram"
}

const serve = HttpServer.serve(ObservabilityRoutes.routes).pipe(Layer.provideMerge(NodeHttpServer.layerTest))

interface Scrape {
  readonly types: ReadonlyMap<string, string>
  readonly typeLines: ReadonlyArray<string>
  readonly value: (series: string) => number
  readonly series: (name: string) => ReadonlyArray<string>
}

const scrape = Effect.gen(function* () {
  const text = yield* HttpClient.get("/metrics").pipe(Effect.flatMap((r) => r.text))
  const lines = text.split("\n").filter((l) => l.length > 0)
  const typed = lines.flatMap((l) => {
    const m = /^# TYPE (\S+) (\S+)$/.exec(l)
    return m === null ? [] : [[m[1]!, m[2]!] as const]
  })
  const typeLines = typed.map(([name]) => name)
  const types = new Map(typed)
  const samples = lines.filter((l) => !l.startsWith("#"))
  for (const l of samples) assert.match(l, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+$/, l)
  const value = (series: string) => {
    const line = samples.find((l) => l.startsWith(`${series} `))
    assert.isDefined(line, `no sample ${series}`)
    return Number(line!.slice(series.length + 1))
  }
  const series = (name: string) => samples.filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  return { types, typeLines, value, series } satisfies Scrape
})

/** Garbage enough for V8 to run a few minor collections (bounded). */
const churn = () => {
  let kept = 0
  for (let i = 0; i < 200; i++) kept += Array.from({ length: 10_000 }, (_, j) => ({ j })).length
  return kept
}

describe("GET /metrics: stock Node process metrics", () => {
  it.scoped("has prom-client's default names, each family once, with sane values", () =>
    Effect.gen(function* () {
      yield* Layer.build(serve).pipe(
        Effect.flatMap((context) =>
          Effect.gen(function* () {
            const first = yield* scrape
            churn()
            const s = yield* scrape
            assert.strictEqual(new Set(s.typeLines).size, s.typeLines.length, "a family is rendered twice")
            for (const [name, type] of Object.entries(stock)) assert.strictEqual(s.types.get(name), type, name)
            assert.strictEqual(s.types.get("sluice_process_resident_memory_bytes"), "gauge", "sluice_ names stay")

            const cpu = ["user", "system"].map((m) => s.value(`process_cpu_${m}_seconds_total`))
            assert.isAbove(cpu[0]!, 0)
            assert.closeTo(s.value("process_cpu_seconds_total"), cpu[0]! + cpu[1]!, 1e-9)
            assert.isAtLeast(s.value("process_cpu_seconds_total"), first.value("process_cpu_seconds_total"))
            const started = Date.now() / 1000 - process.uptime()
            assert.closeTo(s.value("process_start_time_seconds"), started, 2)

            const rss = s.value("process_resident_memory_bytes")
            assert.isAbove(rss, 10 * 1024 * 1024)
            assert.isAbove(s.value("process_virtual_memory_bytes"), rss)
            assert.isAbove(s.value("process_heap_bytes"), 0)
            assert.isAtMost(s.value("nodejs_heap_size_used_bytes"), s.value("nodejs_heap_size_total_bytes"))
            assert.isAbove(s.value("nodejs_external_memory_bytes"), 0)
            assert.isAbove(s.value('nodejs_heap_space_size_used_bytes{space="old"}'), 0)
            assert.isAbove(s.value('nodejs_heap_space_size_total_bytes{space="new"}'), 0)

            assert.isAbove(s.value("process_open_fds"), 2)
            assert.isAtMost(s.value("process_open_fds"), s.value("process_max_fds"))
            assert.isAbove(s.value("nodejs_active_handles_total"), 0, "the test server's socket")
            assert.isAtLeast(s.value("nodejs_active_resources_total"), s.value("nodejs_active_handles_total"))

            const lag = (q: string) => s.value(`nodejs_eventloop_lag_${q}_seconds`)
            assert.isAtLeast(s.value("nodejs_eventloop_lag_seconds"), 0)
            assert.isBelow(s.value("nodejs_eventloop_lag_seconds"), 60)
            assert.isAtMost(lag("min"), lag("p50"))
            assert.isAtMost(lag("p50"), lag("p90"))
            assert.isAtMost(lag("p90"), lag("p99"))
            assert.isAtMost(lag("p99"), lag("max"))

            const [major, minor, patch] = process.versions.node.split(".")
            const version = `{version="${process.version}",major="${major}",minor="${minor}",patch="${patch}"}`
            assert.strictEqual(s.value(`nodejs_version_info${version}`), 1)

            const gcCounts = s.series("nodejs_gc_duration_seconds_count")
            assert.isNotEmpty(gcCounts, "no garbage collection seen after the churn")
            for (const line of gcCounts) {
              const kind = /kind="(\w+)"/.exec(line)![1]!
              const count = Number(line.slice(line.lastIndexOf(" ") + 1))
              assert.oneOf(kind, ["major", "minor", "incremental", "weakcb"])
              assert.strictEqual(s.value(`nodejs_gc_duration_seconds_bucket{kind="${kind}",le="+Inf"}`), count)
              assert.isAtMost(s.value(`nodejs_gc_duration_seconds_bucket{kind="${kind}",le="0.001"}`), count)
              assert.isAtLeast(s.value(`nodejs_gc_duration_seconds_sum{kind="${kind}"}`), 0)
            }
          }).pipe(Effect.provide(context))
        )
      )
    })
  )
})
