/**
 * Overload bench: calls arrive at twice the backend's capacity (open loop: call i starts at i / rate whatever
 * happened before) against a simulator with 4 slots and a strict queue of 4 (`strictQueue`, `maxQueue` 4: a
 * fifth waiter gets 503 server busy). The official `ollama` client fires each call on arrival and collects them
 * with `Promise.allSettled` (it has no retry, so every 503 is a lost call); Sluice's engine holds calls in its own
 * slots (backpressure): a 503 halves the backend's limit (a configured one too) and puts the call back in line,
 * with `slots` at the backend's 4, unset (the default, `Backends.defaults.slots`) and 32 (8x the backend's).
 *
 *   npm run bench -- overload        or   node --import tsx bench/overload.ts
 */
import { Effect, ManagedRuntime } from "effect"
import { Ollama } from "ollama"
import type { ChatRequest, ChatResponse } from "../src/Domain/Chat.js"
import * as Backends from "../src/Llm/Backends.js"
import * as Engine from "../src/Llm/Engine.js"
import { Llm } from "../src/Llm/Llm.js"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { type Outcome, failureText, runOpenLoop } from "./support/Load.js"
import * as Report from "./support/Report.js"
import { describeModel, model, simulator } from "./support/Server.js"
import { fmt, summarize } from "./support/Stats.js"

const slots = 4
const maxQueue = 4
const tokenMs = 5
const predict = 20
const seconds = Number(process.env.SLUICE_BENCH_SECONDS ?? 4)
const nominalCeiling = slots / ((predict * tokenMs) / 1000)
const rate = 2 * nominalCeiling
const total = Math.round(rate * seconds)
const llama = model(defaultModels[0]!, {
  numParallel: slots,
  loadMs: 0,
  promptTokenMs: 0,
  outputTokenMs: tokenMs,
  jitter: 0
})

const request = (tag: string, i: number): ChatRequest => ({
  model: "llama3.2",
  messages: [{ role: "user", content: `overload ${tag} call ${i}: answer briefly` }],
  options: { num_predict: predict }
})

interface Row {
  readonly client: string
  readonly outcome: Outcome
  readonly simulatedMs: number
  readonly answers: number
  readonly rejected503: number
  readonly upstream: number
  readonly retries: string
}

const sim = await simulator({ models: [llama], strictQueue: true, maxQueue })
const rows: Array<Row> = []

const measure = async (
  client: string,
  run: (record: (r: ChatResponse) => void) => Promise<{ outcome: Outcome; retries: string }>
) => {
  process.stderr.write(`[overload] ${client}\n`)
  await new Promise((r) => setTimeout(r, 300))
  await sim.resetStats()
  let simulatedMs = 0
  let answers = 0
  const { outcome, retries } = await run((r) => {
    simulatedMs += (r.eval_count ?? 0) * tokenMs
    answers++
  })
  const stats = await sim.stats()
  rows.push({
    client,
    outcome,
    simulatedMs,
    answers,
    rejected503: stats.rejected503,
    upstream: stats.requests["/api/chat"] ?? 0,
    retries
  })
}

try {
  const ollama = new Ollama({ host: sim.url })
  await ollama.chat({ ...request("warm", 0), stream: false } as never)
  await measure("official `ollama` client, Promise.allSettled", async (record) => ({
    outcome: await runOpenLoop(total, rate, (i) =>
      ollama
        .chat({ ...request("official", i), stream: false } as never)
        .then((r) => record(r as unknown as ChatResponse))
    ),
    retries: "none (no retry)"
  }))
  for (const engineSlots of [slots, undefined, 32]) {
    const label = engineSlots === undefined ? `unset (${String(Backends.defaults.slots)})` : String(engineSlots)
    const runtime = ManagedRuntime.make(
      Engine.layer({ backends: [{ url: sim.url, ...(engineSlots === undefined ? {} : { slots: engineSlots }) }] })
    )
    try {
      await runtime.runPromise(Effect.flatMap(Llm, (llm) => llm.chat(request(`warm-${label}`, 0))))
      const before = await runtime.runPromise(Effect.flatMap(Llm, (llm) => llm.stats))
      await measure(`Sluice engine, slots ${label}`, async (record) => {
        const outcome = await runOpenLoop(total, rate, (i) =>
          runtime.runPromise(Effect.flatMap(Llm, (llm) => llm.chat(request(`sluice-${label}`, i)))).then(record)
        )
        const after = await runtime.runPromise(Effect.flatMap(Llm, (llm) => llm.stats))
        return { outcome, retries: String(after.retries - before.retries) }
      })
    } finally {
      await runtime.dispose()
    }
  }
} finally {
  await sim.stop()
}

Report.write({
  scenario: "overload",
  title: "twice the backend's capacity, small backend queue",
  setup: [
    `Simulator in its own process: ${describeModel(llama)}; strictQueue, maxQueue ${maxQueue}: at most ${slots} running + ${maxQueue} waiting, the next request gets 503 server busy.`,
    `Every request has num_predict ${predict}: L ≤ ${predict * tokenMs} ms, ceiling S / L = ${nominalCeiling} req/s nominal (the table uses L̄ of the answers).`,
    `Offered load: ${total} distinct calls arriving at ${rate} req/s (2 × the nominal ceiling) for ${seconds} s, open loop; latency is from each call's arrival.`,
    "Engine: Engine.layer with one backend and the defaults (503 busy halves the backend's limit, a configured one too, and re-queues the call without spending a retry; 12 retries within 30 s for other errors; breaker: 20 failures in a row or 50 % of 100 in 10 s, 503 not counted)."
  ],
  tables: [
    {
      headers: [
        "client",
        "succeeded",
        "good req/s",
        "× ceiling S/L̄",
        "p50",
        "p99",
        "503s sent by the simulator",
        "upstream requests",
        "engine retries",
        "failures"
      ],
      rows: rows.map((r) => {
        const s = summarize(r.outcome.latencies, total, r.outcome.elapsedMs)
        const ceiling = r.answers === 0 ? nominalCeiling : slots / (r.simulatedMs / r.answers / 1000)
        return [
          r.client,
          `${s.ok}/${total} (${fmt.pct(s.ok / total)})`,
          fmt.rps(s.rps),
          fmt.ratio(s.rps / ceiling),
          fmt.ms(s.p50),
          fmt.ms(s.p99),
          String(r.rejected503),
          String(r.upstream),
          r.retries,
          failureText(r.outcome.failures)
        ]
      })
    }
  ],
  notes: [
    "good req/s = successful calls / wall time from the first arrival to the last completion, so a client that drops calls finishes early but does little work.",
    "With slots at the backend's capacity or just above it, Sluice queues the excess itself: nothing is lost, and latency grows with the backlog (arrivals outpace the ceiling 2:1 for the whole run)."
  ],
  data: {
    slots,
    maxQueue,
    tokenMs,
    predict,
    rate,
    total,
    rows: rows.map((r) => ({
      ...r,
      outcome: undefined,
      summary: summarize(r.outcome.latencies, total, r.outcome.elapsedMs),
      failures: Object.fromEntries(r.outcome.failures)
    }))
  }
})
