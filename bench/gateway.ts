/**
 * Gateway bench: the latency `sluice serve` adds in front of a backend, at a fixed request rate (open loop),
 * against calling the simulator directly with the same client (global fetch) in the same run. Every call is a
 * cache miss (distinct prompts), so the whole pipeline runs. Also reports Sluice's own `x-sluice-overhead-ms`.
 *
 *   npm run bench -- gateway        or   node --import tsx bench/gateway.ts
 */
import { spawn } from "node:child_process"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { runOpenLoop } from "./support/Load.js"
import * as Machine from "./support/Machine.js"
import * as Report from "./support/Report.js"
import { describeModel, model, simulator } from "./support/Server.js"
import { fmt, percentile, summarize } from "./support/Stats.js"

const rate = Number(process.env.SLUICE_BENCH_RATE ?? 50)
const total = Math.round(rate * Number(process.env.SLUICE_BENCH_SECONDS ?? 8))
const llama = model(defaultModels[0]!, { numParallel: 32, loadMs: 0, promptTokenMs: 0, outputTokenMs: 2, jitter: 0 })

/** `sluice serve` (the built bundle) in front of `backend`; resolves with its URL and a stop function. */
const gateway = (backend: string) =>
  new Promise<{ url: string; stop: () => void }>((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/sluice.mjs", "serve", "--port", "0", "--ollama", backend], {
      env: { ...process.env, SLUICE_BACKEND_SLOTS: "32" },
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString()
      const match = /Listening on (http:\/\/[\d.:]+)/.exec(out.replace(/\x1b\[[0-9;]*m/g, ""))
      if (match) resolve({ url: match[1]!, stop: () => child.kill("SIGTERM") })
    })
    child.once("exit", (code) => reject(new Error(`serve exited with ${code}`)))
  })

const overheads: Array<number> = []

const call = (base: string, tag: string) => (i: number) =>
  fetch(`${base}/api/chat`, {
    method: "POST",
    body: JSON.stringify({
      model: "llama3.2",
      messages: [{ role: "user", content: `${tag} ${i}` }],
      stream: false,
      options: { num_predict: 10 }
    })
  }).then(async (r) => {
    if (r.status !== 200) throw new Error(`status ${r.status}`)
    const overhead = r.headers.get("x-sluice-overhead-ms")
    if (overhead !== null) overheads.push(Number(overhead))
    await r.arrayBuffer()
  })

const sim = await simulator({ models: [llama] })
const gw = await gateway(sim.url)
await runOpenLoop(100, rate, call(gw.url, "warm"))
await runOpenLoop(100, rate, call(sim.url, "warm"))
overheads.length = 0
const direct = await runOpenLoop(total, rate, call(sim.url, "direct"))
const through = await runOpenLoop(total, rate, call(gw.url, "gateway"))
gw.stop()
await sim.stop()

const d = summarize(direct.latencies, total, direct.elapsedMs)
const g = summarize(through.latencies, total, through.elapsedMs)
const sorted = Float64Array.from(overheads).sort()
const row = (name: string, s: typeof d, failures: number) => [
  name,
  `${s.ok}/${s.calls}`,
  fmt.ms(s.p50),
  fmt.ms(s.p99),
  String(failures)
]
Report.write({
  scenario: "gateway",
  title: "Gateway: latency added by sluice serve at a fixed rate",
  setup: [
    Machine.describe(Machine.machine()),
    `simulator: ${describeModel(llama)}; num_predict 10 (~20 ms per call); 32 slots, so no queueing at ${rate} req/s`,
    `open loop at ${rate} req/s, ${total} calls each way, global fetch, every call a cache miss`
  ],
  tables: [
    {
      headers: ["path", "ok", "p50", "p99", "failures"],
      rows: [
        row("simulator directly", d, direct.failures.size),
        row("through sluice serve", g, through.failures.size),
        ["added by Sluice", "", fmt.ms(g.p50 - d.p50), fmt.ms(g.p99 - d.p99), ""]
      ]
    },
    {
      title: "x-sluice-overhead-ms (Sluice's own time, upstream excluded)",
      headers: ["p50", "p99"],
      rows: [[fmt.ms(percentile(sorted, 0.5)), fmt.ms(percentile(sorted, 0.99))]]
    }
  ],
  data: {
    rate,
    total,
    direct: d,
    gateway: g,
    overheadP50: percentile(sorted, 0.5),
    overheadP99: percentile(sorted, 0.99)
  }
})
