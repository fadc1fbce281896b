/**
 * `/metrics` after a real mixed workload through the gateway and the engine, in front of the simulator: misses
 * and hits, retries, a fallback, a breaker trip. At least 40 `sluice_` series, and the counters moved.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Fallback from "../../src/Llm/Fallback.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import { GatewayUrl, layer as gateway } from "../Http/gateway.js"

const settings = {
  retry: { base: "1 millis", maxDelay: "5 millis", jitter: false, maxRetries: 3 },
  fallbacks: { "no-such-model": [Fallback.alternate("llama3.2")] },
  backend: { breaker: { consecutiveFailures: 3, openFor: "1 minute" } }
} as const

const post = (url: string, path: string, body: unknown) =>
  Effect.promise(() =>
    fetch(`${url}${path}`, { method: "POST", body: JSON.stringify(body) }).then(async (r) => ({
      status: r.status,
      text: await r.text()
    }))
  )

const chat = (url: string, content: string, model = "llama3.2") =>
  post(url, "/api/chat", { model, messages: [{ role: "user", content }], stream: false })

/** The value of the first sample of `name` whose labels include every `labels` fragment. */
const value = (lines: ReadonlyArray<string>, name: string, ...labels: ReadonlyArray<string>) => {
  const line = lines.find((l) => l.startsWith(name) && labels.every((f) => l.includes(f)) && !l.startsWith("#"))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1))
}

layer(gateway(fast(), settings), { excludeTestServices: true })("GET /metrics after a mixed workload", (it) => {
  it.effect("shows >= 40 sluice_ series, and hits, misses, retries, a fallback and a breaker trip moved", () =>
    Effect.gen(function* () {
      const url = yield* GatewayUrl
      const sim = yield* Simulator
      assert.strictEqual((yield* chat(url, "a question")).status, 200)
      assert.strictEqual((yield* chat(url, "a question")).status, 200)
      assert.strictEqual((yield* chat(url, "which model?", "no-such-model")).status, 200)
      yield* post(url, "/api/embed", { model: "nomic-embed-text", input: "hello" })
      yield* post(url, "/api/chat", { model: "llama3.2", messages: [{ role: "user", content: "stream me" }] })

      yield* sim.setFaults({ error500: 0.5, seed: 3 })
      for (let i = 0; i < 10; i++) yield* chat(url, `flaky ${i}`)
      yield* sim.setFaults({ error500: 1 })
      for (let i = 0; i < 3; i++) yield* chat(url, `down ${i}`)
      yield* sim.setFaults({ error500: 0 })

      const text = yield* Effect.promise(() => fetch(`${url}/metrics`).then((r) => r.text()))
      const lines = text.split("\n")
      const series = new Set(
        lines
          .filter((l) => l.startsWith("sluice_"))
          .map((l) =>
            l
              .split(" ")[0]!
              .replace(/_(bucket|sum|count)\b/, "")
              .replace(/,?le="[^"]*"/, "")
          )
      )
      assert.isAtLeast(series.size, 40, `only ${series.size} series`)

      assert.isAtLeast(value(lines, "sluice_cache_hits_total") ?? 0, 1)
      assert.isAtLeast(value(lines, "sluice_cache_misses_total") ?? 0, 1)
      assert.isAtLeast(value(lines, "sluice_llm_retries_total", 'kind="HttpStatusError"') ?? 0, 1)
      assert.strictEqual(value(lines, "sluice_llm_fallbacks_total", 'strategy="alternate"'), 1)
      assert.isAtLeast(value(lines, "sluice_breaker_trips_total") ?? 0, 1)
      assert.strictEqual(value(lines, "sluice_breaker_state"), 2)
      assert.isAtLeast(value(lines, "sluice_llm_tokens_out_total") ?? 0, 1)
      assert.isAtLeast(value(lines, "sluice_llm_time_to_first_token_seconds_count") ?? 0, 1)
      assert.isAtLeast(value(lines, "sluice_http_requests_total", 'route="/api/chat"', 'status="200"') ?? 0, 4)
      assert.isAtLeast(value(lines, "sluice_llm_errors_total") ?? 0, 1)
    })
  )
})
