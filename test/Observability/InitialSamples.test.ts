/**
 * `/metrics` scraped right after the gateway started, before any call: every declared metric without labels has a
 * sample (counters at 0), `sluice_build_info` and `sluice_startup_duration_seconds` are set, and labelled metrics
 * have their series for the label values known at start (the backend, the required models, the routes, the
 * priorities). Then one chat moves those very series (no second series with the same labels).
 *
 * This file runs alone in its worker, so Effect's metric registry holds only what the gateway's start put there.
 */
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { readFileSync } from "node:fs"
import pkg from "../../package.json" with { type: "json" }
import * as Slots from "../../src/Llm/Scheduler/Slots.js"
import { catalog } from "../../src/Observability/Metrics.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import { GatewayUrl, call, layer as gateway } from "../Http/gateway.js"

const effectVersion: string = JSON.parse(
  readFileSync(new URL("../../node_modules/effect/package.json", import.meta.url), "utf8")
).version

const config = ConfigProvider.fromMap(
  new Map([
    ["SLUICE_REQUIRED_MODELS", "llama3.2"],
    ["SLUICE_REQUIRED_EMBED_MODELS", "nomic-embed-text"]
  ])
).pipe(ConfigProvider.orElse(() => ConfigProvider.fromEnv()))

const started = gateway(fast()).pipe(Layer.provide(Layer.setConfigProvider(config)))

interface Sample {
  /** The metric's family: the name without a histogram's `_bucket`, `_sum` or `_count`. */
  readonly family: string
  /** The name as written (`_bucket`, `_sum`, `_count` included). */
  readonly name: string
  /** The series as written, name and labels (`le` included). */
  readonly series: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const histogramOf = (name: string, kinds: ReadonlyMap<string, string>) => {
  const base = name.replace(/_(bucket|sum|count)$/, "")
  return base !== name && kinds.get(base) === "histogram" ? base : name
}

/** The TYPE of each family, and every sample line parsed. */
const parse = (text: string) => {
  const lines = text.split("\n").filter((l) => l.length > 0)
  const kinds = new Map(
    lines.flatMap((l) => {
      const m = /^# TYPE (\S+) (\S+)$/.exec(l)
      return m === null ? [] : [[m[1]!, m[2]!] as const]
    })
  )
  const samples = lines
    .filter((l) => !l.startsWith("#"))
    .map((l): Sample => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(l)
      assert.isNotNull(m, `not a sample line: ${l}`)
      const labels = Object.fromEntries(
        Array.from((m![2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g), (x) => [x[1]!, x[2]!])
      )
      const value = m![3] === "+Inf" ? Infinity : Number(m![3])
      return { family: histogramOf(m![1]!, kinds), name: m![1]!, series: `${m![1]}${m![2] ?? ""}`, labels, value }
    })
  return { kinds, samples }
}

const scrape = Effect.flatMap(GatewayUrl, (url) =>
  Effect.promise(() => fetch(`${url}/metrics`).then((r) => r.text()))
).pipe(Effect.map(parse))

/** The samples of `family` whose labels include all of `labels` (`le` ignored unless asked for). */
const find = (samples: ReadonlyArray<Sample>, family: string, labels: Readonly<Record<string, string>> = {}) =>
  samples.filter((s) => s.family === family && Object.entries(labels).every(([k, v]) => s.labels[k] === v))

/** The value of the one sample named `name` (as written) with exactly these labels. */
const value = (samples: ReadonlyArray<Sample>, name: string, labels: Readonly<Record<string, string>>) => {
  const found = samples.filter((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))
  assert.strictEqual(found.length, 1, `${name}${JSON.stringify(labels)}: ${found.length} samples`)
  return found[0]!.value
}

layer(started, { excludeTestServices: true })("GET /metrics right after start", (it) => {
  it.effect("has a sample for every declared metric, and the series known at start, before any call", () =>
    Effect.gen(function* () {
      const backend = (yield* Simulator).url
      const { kinds, samples } = yield* scrape

      // every declared metric without labels: derived from the declarations, and cross-checked with the TYPE lines
      const unlabelled = catalog.filter((d) => d.labels.length === 0)
      assert.isAtLeast(unlabelled.length, 20)
      for (const d of unlabelled) {
        assert.strictEqual(kinds.get(d.name), d.kind, `# TYPE of ${d.name}`)
        const own = find(samples, d.name).filter((s) => Object.keys(s.labels).every((k) => k === "le"))
        assert.isNotEmpty(own, `${d.name}: TYPE but no sample`)
        if (d.kind === "counter") assert.strictEqual(own[0]!.value, 0, `${d.name} before any call`)
        if (d.kind === "histogram") assert.strictEqual(value(samples, `${d.name}_count`, {}), 0)
      }
      const silent = Array.from(kinds.keys()).filter(
        (name) => unlabelled.some((d) => d.name === name) && find(samples, name).length === 0
      )
      assert.deepStrictEqual(silent, [])

      assert.strictEqual(
        value(samples, "sluice_build_info", { version: pkg.version, node: process.version, effect: effectVersion }),
        1
      )
      assert.isAbove(value(samples, "sluice_startup_duration_seconds", {}), 0)

      // labelled only by backend (or priority): one series per configured backend (priority class)
      for (const d of catalog.filter((d) => d.labels.length === 1 && d.labels[0] === "backend")) {
        assert.isNotEmpty(find(samples, d.name, { backend }), `${d.name}{backend="${backend}"}`)
      }
      for (const d of catalog.filter((d) => d.labels.length === 1 && d.labels[0] === "priority")) {
        for (const priority of Slots.priorities) {
          assert.isNotEmpty(find(samples, d.name, { priority }), `${d.name}{priority="${priority}"}`)
        }
      }
      assert.strictEqual(value(samples, "sluice_queue_wait_seconds_count", { priority: "batch" }), 0)
      assert.isAbove(value(samples, "sluice_scheduler_limit", { backend }), 0)
      assert.strictEqual(value(samples, "sluice_breaker_trips_total", { backend }), 0)
      assert.strictEqual(value(samples, "sluice_ratelimit_rejections_total", { backend, limit: "tokens" }), 0)

      // the required models, the engine's closed sets, the routes
      const chat = { model: "llama3.2:latest", endpoint: "chat", priority: "normal", outcome: "ok" }
      assert.strictEqual(value(samples, "sluice_llm_requests_total", chat), 0)
      assert.strictEqual(
        value(samples, "sluice_llm_requests_total", {
          model: "nomic-embed-text:latest",
          endpoint: "embed",
          priority: "batch",
          outcome: "error"
        }),
        0
      )
      assert.strictEqual(value(samples, "sluice_llm_tokens_out_total", { backend, model: "llama3.2:latest" }), 0)
      assert.strictEqual(value(samples, "sluice_llm_fallbacks_total", { endpoint: "chat", strategy: "stale" }), 0)
      assert.strictEqual(value(samples, "sluice_budget_exhausted_total", { limit: "time" }), 0)
      const routes = find(samples, "sluice_http_requests_total")
      assert.deepStrictEqual(
        routes.filter((s) => s.value !== 0),
        []
      )
      for (const [route, method] of [
        ["/api/chat", "POST"],
        ["/api/embed", "POST"],
        ["/v1/chat/completions", "POST"],
        ["/health/ready", "GET"],
        ["/metrics", "GET"]
      ] as const) {
        assert.strictEqual(value(samples, "sluice_http_requests_total", { route, method, status: "200" }), 0)
      }

      // one chat moves the series created at start: the same series, not a second one beside it
      const answer = yield* call("/api/chat", {
        method: "POST",
        body: { model: "llama3.2", messages: [{ role: "user", content: "hello" }], stream: false }
      })
      assert.strictEqual(answer.status, 200)
      const after = (yield* scrape).samples
      assert.strictEqual(value(after, "sluice_llm_requests_total", chat), 1)
      assert.strictEqual(
        value(after, "sluice_http_requests_total", { route: "/api/chat", method: "POST", status: "200" }),
        1
      )
      assert.isAbove(value(after, "sluice_llm_tokens_out_total", { backend, model: "llama3.2:latest" }), 0)
      const series = after.map((s) => s.series)
      assert.strictEqual(new Set(series).size, series.length, "a series is written twice")
    })
  )
})
