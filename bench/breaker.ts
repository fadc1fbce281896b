/**
 * Breaker bench: how fast `sluice serve` (the built bundle, shipped defaults) fails calls once its only backend is
 * dead, and what the first calls on the dying backend cost. A simulator in its own process serves 20 calls, then
 * answers every call with 500; 16 concurrent calls meet the dead backend (they retry until the breaker opens at 20
 * failures in a row), then 200 calls one after another meet the open breaker: they must fail at once with 503
 * `CircuitOpen` without reaching the backend (its request count is checked). Latency is the client's, over
 * loopback HTTP, so it includes the gateway's own cost.
 *
 *   npm run bench -- breaker        or   node --import tsx bench/breaker.ts
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import * as Report from "./support/Report.js"
import { describeModel, model, simulator, sluiceServe } from "./support/Server.js"
import { fmt, percentile } from "./support/Stats.js"

const llama = model(defaultModels[0]!, { numParallel: 8, loadMs: 0, promptTokenMs: 0, outputTokenMs: 5, jitter: 0 })
const sim = await simulator({ models: [llama] })
const { SLUICE_BACKEND: _b, OLLAMA_HOST: _o, NODE_ENV: _n, ...env } = process.env
const gateway = await sluiceServe(sim.url, { ...env, SLUICE_DATA_DIR: mkdtempSync(join(tmpdir(), "sluice-bench-")) })

const chat = async (i: number): Promise<{ status: number; ms: number; body: string }> => {
  const t0 = performance.now()
  const response = await fetch(`${gateway.url}/api/chat`, {
    method: "POST",
    body: JSON.stringify({
      model: "llama3.2",
      stream: false,
      messages: [{ role: "user", content: `breaker ${i}` }],
      options: { num_predict: 4 }
    })
  })
  const body = await response.text()
  return { status: response.status, ms: performance.now() - t0, body }
}

for (let i = 0; i < 20; i++) await chat(i)
await fetch(`${sim.url}/_sim/faults`, { method: "PUT", body: JSON.stringify({ error500: 1 }) })
const dying = await Promise.all(Array.from({ length: 16 }, (_, i) => chat(100 + i)))
const seen = (await sim.stats()).requests["/api/chat"] ?? 0
const open: Array<{ status: number; ms: number; body: string }> = []
for (let i = 0; i < 200; i++) open.push(await chat(1000 + i))
const reached = ((await sim.stats()).requests["/api/chat"] ?? 0) - seen
await gateway.stop()
await sim.stop()

const row = (label: string, calls: ReadonlyArray<{ status: number; ms: number; body: string }>) => {
  const sorted = Float64Array.from(calls.map((c) => c.ms)).sort()
  const statuses = [...new Set(calls.map((c) => c.status))].join(", ")
  const at = (p: number) => fmt.ms(percentile(sorted, p))
  return [label, String(calls.length), statuses, at(0.5), at(0.99), at(1)]
}
const circuitOpen = open.filter((c) => c.status === 503 && c.body.includes("circuit breaker")).length

Report.write({
  scenario: "breaker",
  title: "a dead backend behind sluice serve: the first calls, then fail-fast",
  setup: [
    `Simulator in its own process: ${describeModel(llama)}; after 20 good calls every call answers 500.`,
    "sluice serve with the shipped defaults (breaker: 20 failures in a row open it, dead; 12 retries within 30 s).",
    "16 concurrent calls meet the dying backend; then 200 sequential calls meet the open breaker.",
    "No ceiling applies to a refusal: the floor is one loopback HTTP round trip through the gateway."
  ],
  tables: [
    {
      headers: ["calls", "n", "statuses", "p50", "p99", "max"],
      rows: [row("on the dying backend (retried until the breaker opened)", dying), row("on the open breaker", open)]
    }
  ],
  notes: [
    `${circuitOpen} of ${open.length} calls on the open breaker answered 503 CircuitOpen; the backend saw ${reached} requests meanwhile: the half-open probes (one per open period: 5 s, then 10 s, ...), nothing else.`
  ],
  data: { dying, open: open.map((c) => ({ status: c.status, ms: c.ms })), reached, circuitOpen }
})
