/**
 * Gateway bench: the latency `sluice serve` adds in front of a backend, at fixed request rates (open loop: 50, 200
 * and 500 req/s by default), against calling the simulator directly with the same client in the same run, and
 * against the floor: a minimal Node proxy (bench/proxy-server.ts) in front of the same simulator, the least any Node
 * process there adds on this machine. Every call is a cache miss (distinct prompts), so the whole pipeline runs.
 * Also reports Sluice's own `x-sluice-overhead-ms`, and the CPU each process spent per call: on a 2-core machine the
 * load generator, the simulator and the gateway compete for the cores, so a latency figure is only read next to them.
 *
 * Choices: every path is warmed once (closed loop) before the first rate: a cold process's first calls cost several
 * times the CPU of warm ones, which the first (slowest) rate would otherwise carry. At each rate the paths take
 * turns in rounds of one second, so a slow spell of this shared VM falls on all alike (run one after the other, the
 * direct path's p99 moved by several ms between runs on its own). The client is node:http with a keep-alive agent
 * (cheaper per call than global fetch, so the load generator takes less of the cores it shares with the gateway);
 * the simulator, the proxy and the gateway each run in their own process. The ceiling is stated from the gateway's
 * CPU per call (one core, CPU-bound), not driven to failure.
 *
 *   npm run bench -- gateway [--rates 50,200,500] [--seconds 6] [--cpu-prof]
 *   node --import tsx bench/gateway.ts --rates 500          (--cpu-prof: sluice serve writes bench/results/profiles)
 */
import { Agent, request } from "node:http"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { runOpenLoop, runPromises } from "./support/Load.js"
import * as Machine from "./support/Machine.js"
import { positiveNumber, unknownFlags } from "./support/Options.js"
import * as Report from "./support/Report.js"
import { describeModel, model, proxy, type Server, simulator, sluiceServe } from "./support/Server.js"
import { fmt, percentile, type Summary, summarize } from "./support/Stats.js"

const argv = process.argv.slice(2)
const unknown = unknownFlags(argv, ["rates", "seconds", "cpu-prof"])
if (unknown.length > 0) throw new Error(`unknown flag(s): ${unknown.join(" ")}; known: --rates --seconds --cpu-prof`)
const ratesFlag = argv.indexOf("--rates")
const rates = (ratesFlag === -1 ? (process.env.SLUICE_BENCH_RATES ?? "50,200,500") : argv[ratesFlag + 1]!)
  .split(",")
  .map(Number)
const seconds = Math.max(1, Math.round(positiveNumber(argv, "seconds", 6)))
const profile = argv.includes("--cpu-prof")
const slots = 64
const llama = model(defaultModels[0]!, { numParallel: slots, loadMs: 0, promptTokenMs: 0, outputTokenMs: 2, jitter: 0 })

const agent = new Agent({ keepAlive: true, maxSockets: 256 })

/** One `/api/chat` call (unary, distinct prompt); resolves with the gateway's overhead header, if any. */
const call =
  (base: URL, tag: string, overheads: Array<number>) =>
  (i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({
        model: "llama3.2",
        messages: [{ role: "user", content: `${tag} ${i}` }],
        stream: false,
        options: { num_predict: 10 }
      })
      const req = request({ agent, host: base.hostname, port: base.port, path: "/api/chat", method: "POST" }, (res) => {
        res.resume()
        res.once("error", reject)
        res.once("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
          const overhead = res.headers["x-sluice-overhead-ms"]
          if (typeof overhead === "string") overheads.push(Number(overhead))
          resolve()
        })
      })
      req.once("error", reject)
      req.setHeader("content-type", "application/json")
      req.end(body)
    })

interface Measured {
  readonly summary: Summary
  readonly failures: number
  readonly failureText: string
  /** CPU per call (ms) of the load generator, the simulator and the process in front of it (NaN where not measured). */
  readonly clientCpu: number
  readonly simCpu: number
  /** The process in front of the simulator: sluice serve, or the minimal proxy (NaN on the direct path). */
  readonly frontCpu: number
  readonly overheads: Float64Array
}

/** One path's rounds at one rate, pooled: latencies and failures together, CPU summed. */
interface Pooled {
  readonly latencies: Array<number>
  readonly failures: Map<string, number>
  elapsedMs: number
  clientCpuMs: number
  simCpuMs: number
  frontCpuMs: number
  readonly overheads: Array<number>
}

const pooled = (): Pooled => ({
  latencies: [],
  failures: new Map(),
  elapsedMs: 0,
  clientCpuMs: 0,
  simCpuMs: 0,
  frontCpuMs: 0,
  overheads: []
})

/** One round, a second of calls on `target` at `rate` (`front`: the process in front of the simulator), into `into`. */
const round = async (rate: number, target: Server, front: Server | undefined, tag: string, into: Pooled) => {
  const [sim0, front0] = [sim.cpuMs(), front?.cpuMs() ?? NaN]
  const outcome = await runOpenLoop(rate, rate, call(new URL(target.url), tag, into.overheads))
  into.latencies.push(...outcome.latencies)
  for (const [k, n] of outcome.failures) into.failures.set(k, (into.failures.get(k) ?? 0) + n)
  into.elapsedMs += outcome.elapsedMs
  into.clientCpuMs += outcome.cpuMs
  into.simCpuMs += sim.cpuMs() - sim0
  into.frontCpuMs += (front?.cpuMs() ?? NaN) - front0
}

const measured = (p: Pooled, total: number): Measured => ({
  summary: summarize(p.latencies, total, p.elapsedMs),
  failures: [...p.failures.values()].reduce((a, b) => a + b, 0),
  failureText: [...p.failures].map(([k, n]) => `${n} ${k}`).join(", "),
  clientCpu: p.clientCpuMs / total,
  simCpu: p.simCpuMs / total,
  frontCpu: p.frontCpuMs / total,
  overheads: Float64Array.from(p.overheads).sort()
})

/**
 * The three paths at `rate`: each warmed with 200 calls, then `seconds` rounds of one second each, taking turns, so
 * a slow spell of the machine (this one is a VM shared with others) falls on all of them alike instead of on
 * whichever path ran then.
 */
const measure = async (rate: number) => {
  const paths = [
    { target: sim, front: undefined, name: "direct", into: pooled() },
    { target: floor, front: floor, name: "proxy", into: pooled() },
    { target: gw, front: gw, name: "gateway", into: pooled() }
  ]
  for (const path of paths)
    await runOpenLoop(Math.min(rate, 200), rate, call(new URL(path.target.url), `warm-${path.name}-${rate}`, []))
  for (let i = 0; i < seconds; i++) {
    for (const path of paths) await round(rate, path.target, path.front, `${path.name}-${rate}-${i}`, path.into)
  }
  const [direct, proxy, gateway] = paths.map((path) => measured(path.into, rate * seconds)) as [
    Measured,
    Measured,
    Measured
  ]
  return { rate, direct, proxy, gateway }
}

const sim = await simulator({ models: [llama] })
const gw = await sluiceServe(
  sim.url,
  { ...process.env, SLUICE_BACKEND_SLOTS: String(slots) },
  profile ? ["--cpu-prof", "--cpu-prof-dir=bench/results/profiles"] : []
)
const floor = await proxy(sim.url)
// a cold process runs its first calls at several times the CPU of a warm one (JIT): every path is warmed once,
// closed loop, before the first rate, so the first rate measured is not the one that pays for the warm-up
const warmUp = 2_000
for (const target of [sim, floor, gw])
  await runPromises(warmUp, 16, call(new URL(target.url), `warm-up-${target.url}`, []))
const runs: Array<{ rate: number; direct: Measured; proxy: Measured; gateway: Measured }> = []
for (const rate of rates) runs.push(await measure(rate))
await gw.stop()
await floor.stop()
await sim.stop()
agent.destroy()

const us = (ms: number) => (Number.isNaN(ms) ? "-" : `${Math.round(ms * 1000)} µs`)
const row = (rate: number, path: string, m: Measured) => [
  String(rate),
  path,
  `${m.summary.ok}/${m.summary.calls}`,
  fmt.ms(m.summary.p50),
  fmt.ms(m.summary.p99),
  m.failures === 0 ? "0" : `${m.failures} (${m.failureText})`,
  us(m.clientCpu),
  us(m.simCpu),
  us(m.frontCpu)
]
const added = (rate: number, what: string, path: Measured, direct: Measured) => [
  String(rate),
  what,
  "",
  fmt.ms(path.summary.p50 - direct.summary.p50),
  fmt.ms(path.summary.p99 - direct.summary.p99),
  "",
  "",
  "",
  ""
]
const busiest = runs.at(-1)!
const ceiling = 1000 / busiest.gateway.frontCpu
Report.write({
  scenario: "gateway",
  title: "Gateway: latency added by sluice serve at fixed rates",
  setup: [
    Machine.describe(Machine.machine()),
    `simulator (own process): ${describeModel(llama)}; num_predict 10 (~20 ms per call); ${slots} slots ` +
      `(sluice: SLUICE_BACKEND_SLOTS=${slots}), so no queueing at ${rates.join(", ")} req/s`,
    "the floor: a minimal Node proxy (bench/proxy-server.ts: node:http in, an undici Pool of 64 out, bodies " +
      "forwarded as bytes, the same node flags), the least any Node process in front of the simulator adds here",
    `open loop at ${rates.join(", ")} req/s, ${seconds} rounds of 1 s each way per rate (the paths taking turns), ` +
      `node:http keep-alive client, ` +
      `every call a cache miss; every path warmed with ${warmUp} calls (16 at a time) before the first rate, and ` +
      `with 200 at each rate${profile ? "; sluice serve under --cpu-prof (slower)" : ""}`
  ],
  tables: [
    {
      headers: [
        "req/s",
        "path",
        "ok",
        "p50",
        "p99",
        "failures",
        "client CPU/call",
        "sim CPU/call",
        "sluice (or proxy) CPU/call"
      ],
      rows: runs.flatMap(({ rate, direct, proxy, gateway }) => [
        row(rate, "simulator directly", direct),
        row(rate, "through the minimal proxy (floor)", proxy),
        row(rate, "through sluice serve", gateway),
        added(rate, "added by the minimal proxy", proxy, direct),
        added(rate, "**added by Sluice**", gateway, direct)
      ])
    },
    {
      title: "x-sluice-overhead-ms (Sluice's own time, upstream excluded)",
      headers: ["req/s", "p50", "p99"],
      rows: runs.map(({ rate, gateway }) => [
        String(rate),
        fmt.ms(percentile(gateway.overheads, 0.5)),
        fmt.ms(percentile(gateway.overheads, 0.99))
      ])
    }
  ],
  notes: [
    "The minimal proxy's rows are the floor: what a Node process in front of the simulator adds on this machine with " +
      "no protection layer at all; read Sluice's added latency against them as well as against the direct path.",
    `Ceiling: at ${busiest.rate} req/s sluice serve spent ${us(busiest.gateway.frontCpu)} of CPU per call, so one ` +
      `core saturates near ${Math.round(ceiling)} req/s (an estimate from CPU, not a run driven to failure); on this ` +
      `machine the client and the simulator take the other core's share (columns above).`
  ],
  data: runs.map(({ rate, direct, proxy, gateway }) => ({
    rate,
    direct: { ...direct.summary, failures: direct.failures, clientCpuMs: direct.clientCpu, simCpuMs: direct.simCpu },
    proxy: { ...proxy.summary, failures: proxy.failures, proxyCpuMs: proxy.frontCpu },
    gateway: {
      ...gateway.summary,
      failures: gateway.failures,
      clientCpuMs: gateway.clientCpu,
      simCpuMs: gateway.simCpu,
      gatewayCpuMs: gateway.frontCpu,
      overheadP50: percentile(gateway.overheads, 0.5),
      overheadP99: percentile(gateway.overheads, 0.99)
    },
    addedP50: gateway.summary.p50 - direct.summary.p50,
    addedP99: gateway.summary.p99 - direct.summary.p99,
    proxyAddedP50: proxy.summary.p50 - direct.summary.p50,
    proxyAddedP99: proxy.summary.p99 - direct.summary.p99
  }))
})
