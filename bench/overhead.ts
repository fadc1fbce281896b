/**
 * Overhead bench: what each client costs per call when the server costs (almost) nothing. 32 callers, 5,000
 * non-streamed chats after 2,000 warm-up calls per client, the clients taking turns in 5 rounds of 1,000: raw
 * undici `request` (Agent sized to the callers), the official `ollama` client (fetch), Sluice's bare OllamaClient,
 * and Sluice's whole engine (`Engine.layer` + `llm.chat`, every call a miss). Two servers, each in its own
 * process: the fixed-reply stub (client-bound: the figure is the client's) and the simulator at zero latency (its
 * own ~0.5-1 ms of CPU per request is then the limit). Ratios are to raw undici in the same run; CPU per call is read from each process.
 * Sluice's rows run the built bundle (`dist/index.mjs`, what an app importing Sluice runs; support/Shipped.ts says
 * why not src/ under tsx): `npm run build` first.
 *
 *   npm run bench -- overhead        or   node --import tsx bench/overhead.ts
 */
import * as Undici from "@effect/platform-node/Undici"
import { Effect, ManagedRuntime } from "effect"
import { Ollama } from "ollama"
import type { ChatRequest } from "../src/Domain/Chat.js"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { type Outcome, failureText, runEffects, runPromises } from "./support/Load.js"
import * as Report from "./support/Report.js"
import { type Server, describeModel, model, simulator, stub } from "./support/Server.js"
import { Sluice } from "./support/Shipped.js"
import { fmt, summarize } from "./support/Stats.js"

const { Engine, Llm, OllamaClient } = Sluice

const callers = 32
/** The clients take turns: `rounds` rounds of calls / rounds calls each (`measure`). */
const rounds = 5
/** Calls per client, a whole number of rounds. */
const calls = Math.ceil(Number(process.env.SLUICE_BENCH_CALLS ?? 5_000) / rounds) * rounds
// every client warmed alike; 500 left the first engine row (cache bypass) partly unoptimised by V8 (~40 % more CPU per call)
const warmup = 2_000
const zero = defaultModels.map((m) =>
  model(m, { numParallel: 4, loadMs: 0, promptTokenMs: 0, outputTokenMs: 0, jitter: 0 })
)

let sequence = 0
const request = (): ChatRequest => ({
  model: "llama3.2",
  messages: [{ role: "user", content: `overhead call ${sequence++}` }],
  options: { num_predict: 8 }
})

interface Client {
  readonly name: string
  /** Runs `n` calls with `callers` callers. */
  readonly run: (n: number) => Promise<Outcome>
  readonly close: () => Promise<void>
}

const undici = (url: string): Client => {
  const agent = new Undici.Agent({ connections: callers, pipelining: 1 })
  return {
    name: "raw undici `request`",
    run: (n) =>
      runPromises(n, callers, async () => {
        const res = await Undici.request(`${url}/api/chat`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...request(), stream: false }),
          dispatcher: agent
        })
        if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
        await res.body.json()
      }),
    close: () => agent.close()
  }
}

const official = (url: string): Client => {
  const ollama = new Ollama({ host: url })
  return {
    name: "official `ollama` client (fetch)",
    run: (n) => runPromises(n, callers, () => ollama.chat({ ...request(), stream: false } as never)),
    close: async () => {}
  }
}

const bare = (url: string): Client => {
  const runtime = ManagedRuntime.make(OllamaClient.layer({ host: url, connections: callers }))
  return {
    name: "Sluice bare OllamaClient",
    run: (n) =>
      runtime.runPromise(runEffects(n, callers, () => Effect.flatMap(OllamaClient, (c) => c.chat(request())))),
    close: () => runtime.dispose()
  }
}

const engine = (url: string, cache: "bypass" | "use"): Client => {
  const runtime = ManagedRuntime.make(Engine.layer({ backends: [{ url, slots: callers, connections: callers }] }))
  return {
    name: `Sluice engine, llm.chat (cache ${cache === "use" ? "use: distinct prompts, all misses" : "bypass"})`,
    run: (n) =>
      runtime.runPromise(runEffects(n, callers, () => Effect.flatMap(Llm, (llm) => llm.chat(request(), { cache })))),
    close: () => runtime.dispose()
  }
}

interface Row {
  readonly server: string
  readonly client: string
  readonly outcome: Outcome
  readonly serverCpuMs: number
}

/** Outcomes of several runs of one client as one: latencies and failures pooled, time and CPU summed. */
const pooled = (parts: ReadonlyArray<Outcome>): Outcome => {
  const failures = new Map<string, number>()
  for (const part of parts) for (const [k, v] of part.failures) failures.set(k, (failures.get(k) ?? 0) + v)
  return {
    latencies: parts.flatMap((p) => p.latencies),
    failures,
    elapsedMs: parts.reduce((sum, p) => sum + p.elapsedMs, 0),
    cpuMs: parts.reduce((sum, p) => sum + p.cpuMs, 0)
  }
}

/**
 * Every client is made and warmed first, then the clients take turns in `rounds` rounds of calls / rounds each: a
 * slow spell of the machine (another process, a GC of an earlier row's heap) falls on every row alike instead of
 * on whichever row ran then, so the ratios of one run hold (rows run one after another moved by ±20 % between runs).
 */
const measure = async (server: Server, label: string): Promise<Array<Row>> => {
  const clients = [
    undici,
    official,
    bare,
    (url: string) => engine(url, "bypass"),
    (url: string) => engine(url, "use")
  ].map((make) => make(server.url))
  try {
    for (const client of clients) {
      process.stderr.write(`[overhead] ${label}: ${client.name} (warm-up)\n`)
      await client.run(warmup)
    }
    const parts = clients.map(() => [] as Array<Outcome>)
    const serverCpu = clients.map(() => 0)
    for (let round = 0; round < rounds; round++) {
      process.stderr.write(`[overhead] ${label}: round ${round + 1} of ${rounds}\n`)
      for (const [i, client] of clients.entries()) {
        const cpu = server.cpuMs()
        parts[i]!.push(await client.run(calls / rounds))
        serverCpu[i]! += server.cpuMs() - cpu
      }
    }
    return clients.map((client, i) => ({
      server: label,
      client: client.name,
      outcome: pooled(parts[i]!),
      serverCpuMs: serverCpu[i]!
    }))
  } finally {
    for (const client of clients) await client.close()
  }
}

const rows: Array<Row> = []
const fixed = await stub()
try {
  rows.push(...(await measure(fixed, "stub")))
} finally {
  await fixed.stop()
}
const sim = await simulator({ models: zero })
try {
  rows.push(...(await measure(sim, "simulator, zero latency")))
} finally {
  await sim.stop()
}

const tables = ["stub", "simulator, zero latency"].map((server) => {
  const these = rows.filter((r) => r.server === server)
  const base = summarize(these[0]!.outcome.latencies, calls, these[0]!.outcome.elapsedMs).rps
  return {
    title: `server: ${server}`,
    headers: ["client", "req/s", "× raw undici", "p50", "p99", "client CPU / call", "server CPU / call", "failures"],
    rows: these.map((r) => {
      const s = summarize(r.outcome.latencies, calls, r.outcome.elapsedMs)
      return [
        r.client,
        fmt.rps(s.rps),
        fmt.ratio(s.rps / base),
        fmt.ms(s.p50),
        fmt.ms(s.p99),
        `${((r.outcome.cpuMs / calls) * 1000).toFixed(0)} µs`,
        `${((r.serverCpuMs / calls) * 1000).toFixed(0)} µs`,
        failureText(r.outcome.failures)
      ]
    })
  }
})

Report.write({
  scenario: "overhead",
  title: "per-call cost of each client at zero server latency",
  setup: [
    `${callers} concurrent callers, ${calls.toLocaleString("en")} non-streamed /api/chat calls per client after ${warmup} warm-up calls, the clients taking turns in ${rounds} rounds of ${(calls / rounds).toLocaleString("en")}; client and server share the machine's cores.`,
    "stub: a plain node:http server answering one canned reply (bench/stub-server.ts): the ceiling is what the client (and the loopback) allow.",
    `simulator: ${describeModel(zero[0]!)}: zero latency, so the simulator's own CPU per request bounds every client.`,
    "Engine: one backend with slots 32 and connections 32 (the callers never wait for a slot), default retry/timeouts/breaker; a distinct prompt per call.",
    "Sluice's rows run the built bundle dist/index.mjs (what an app importing Sluice runs), not src/ under tsx."
  ],
  tables,
  notes: [
    "client CPU / call is the bench process's user+system CPU over the calls (it includes the load generator, about the same for every client); server CPU / call is read from /proc.",
    "When client CPU + server CPU per call approach (cores / req/s), the machine, not a client, is the limit."
  ],
  data: {
    callers,
    calls,
    warmup,
    rows: rows.map((r) => ({
      server: r.server,
      client: r.client,
      summary: summarize(r.outcome.latencies, calls, r.outcome.elapsedMs),
      clientCpuMs: r.outcome.cpuMs,
      serverCpuMs: r.serverCpuMs,
      failures: Object.fromEntries(r.outcome.failures)
    }))
  }
})
