/**
 * Tiers bench: chat through the engine (`Engine.layer` + `Llm`) against the simulator in another process, from
 * one call at a time to everything submitted at once, with and without cache hits, with the backend's `slots`
 * set to the simulator's slot count or left unset (the default). Every figure is set against the ceiling S / L̄:
 * S simulator slots, L̄ the mean simulated latency of the very answers of that run (eval_count × outputTokenMs).
 *
 *   npm run bench -- tiers        or   node --import tsx bench/tiers.ts
 */
import { Effect, ManagedRuntime } from "effect"
import { performance } from "node:perf_hooks"
import type { ChatRequest } from "../src/Domain/Chat.js"
import { Backends, defaults as backendDefaults } from "../src/Llm/Backends.js"
import * as Engine from "../src/Llm/Engine.js"
import { Llm } from "../src/Llm/Llm.js"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { type Outcome, failureText, runEffects } from "./support/Load.js"
import * as Report from "./support/Report.js"
import { describeModel, model, simulator } from "./support/Server.js"
import { fmt, summarize } from "./support/Stats.js"
import { barChart } from "./support/Svg.js"

const slots = 4
const tokenMs = 5
const predict = 20
const callers = 32
const calls = Number(process.env.SLUICE_BENCH_CALLS ?? 200)
const sequentialCalls = 30
const llama = model(defaultModels[0]!, {
  numParallel: slots,
  loadMs: 0,
  promptTokenMs: 0,
  outputTokenMs: tokenMs,
  jitter: 0
})
const nominalCeiling = slots / ((predict * tokenMs) / 1000)

const request = (tag: string, i: number): ChatRequest => ({
  model: "llama3.2",
  messages: [{ role: "user", content: `tier ${tag} question number ${i}: say something short` }],
  options: { num_predict: predict }
})

interface Row {
  readonly tier: string
  readonly engineSlots: string
  readonly callers: string
  readonly outcome: Outcome
  /** Sum of simulated latencies (ms) of the answers, to compute L̄. */
  readonly simulatedMs: number
  readonly answers: number
  readonly upstream: number
  readonly lookups: Record<string, number>
}

type Runtime = ManagedRuntime.ManagedRuntime<Llm | Backends, never>

const sim = await simulator({ models: [llama] })
const engine = (engineSlots: number | undefined): Runtime =>
  ManagedRuntime.make(
    Engine.layer({ backends: [{ url: sim.url, ...(engineSlots === undefined ? {} : { slots: engineSlots }) }] })
  ) as Runtime

/** Runs `body` (which gets a `chat` that records eval counts and lookups) and reads the simulator's counters. */
const measure = async (
  runtime: Runtime,
  tier: string,
  engineSlots: number | undefined,
  shape: string,
  body: (
    chat: (req: ChatRequest, priority?: "batch") => Effect.Effect<unknown, unknown, Llm>
  ) => Effect.Effect<Outcome, never, Llm>
): Promise<Row> => {
  let simulatedMs = 0
  let answers = 0
  const lookups: Record<string, number> = {}
  const chat = (req: ChatRequest, priority?: "batch") =>
    Effect.flatMap(Llm, (llm) => llm.chatServed(req, priority === undefined ? {} : { priority })).pipe(
      Effect.tap((served) =>
        Effect.sync(() => {
          simulatedMs += (served.value.eval_count ?? 0) * tokenMs
          answers++
          lookups[served.lookup] = (lookups[served.lookup] ?? 0) + 1
        })
      )
    )
  await sim.resetStats()
  const outcome = await runtime.runPromise(body(chat))
  const upstream = (await sim.stats()).requests["/api/chat"] ?? 0
  return {
    tier,
    engineSlots: engineSlots === undefined ? `unset (${String(backendDefaults.slots)})` : String(engineSlots),
    callers: shape,
    outcome,
    simulatedMs,
    answers,
    upstream,
    lookups
  }
}

/** All of `reqs` submitted at once, each timed from the common start. */
const allAtOnce = <R>(n: number, call: (i: number) => Effect.Effect<unknown, unknown, R>) => runEffects(n, n, call)

const warm = (runtime: Runtime, tag: string) =>
  runtime.runPromise(runEffects(16, 8, (i) => Effect.flatMap(Llm, (llm) => llm.chat(request(`warm-${tag}`, i)))))

const rows: Array<Row> = []
let chatBatchRow: { seconds: number; ok: number; simulatedMs: number; answers: number; upstream: number } | undefined
for (const engineSlots of [slots, undefined]) {
  const runtime = engine(engineSlots)
  const tag = `s${engineSlots ?? "unset"}`
  await warm(runtime, tag)
  if (engineSlots === slots) {
    rows.push(
      await measure(runtime, "(a) sequential", engineSlots, "1", (chat) =>
        runEffects(sequentialCalls, 1, (i) => chat(request(`a-${tag}`, i)))
      )
    )
  }
  rows.push(
    await measure(runtime, "(b) concurrent", engineSlots, String(callers), (chat) =>
      runEffects(calls, callers, (i) => chat(request(`b-${tag}`, i)))
    )
  )
  rows.push(
    await measure(runtime, "(c) batch priority", engineSlots, `${calls} at once`, (chat) =>
      allAtOnce(calls, (i) => chat(request(`c-${tag}`, i), "batch"))
    )
  )
  if (engineSlots === slots) {
    // (c') the same load through llm.chatBatch: one effect, so only the total time is known.
    await sim.resetStats()
    const reqs = Array.from({ length: calls }, (_, i) => request(`cb-${tag}`, i))
    const t0 = performance.now()
    const results = await runtime.runPromise(Effect.flatMap(Llm, (llm) => llm.chatBatch(reqs)))
    const ms = performance.now() - t0
    const ok = results.filter((r) => r._tag === "Right")
    chatBatchRow = {
      seconds: ms / 1000,
      ok: ok.length,
      simulatedMs: ok.reduce((sum, r) => sum + (r._tag === "Right" ? (r.right.eval_count ?? 0) * tokenMs : 0), 0),
      answers: ok.length,
      upstream: (await sim.stats()).requests["/api/chat"] ?? 0
    }
    // (d) half the calls repeat prompts answered earlier (the cache is warmed with them, untimed).
    const half = Math.floor(calls / 2)
    await runtime.runPromise(
      runEffects(half, callers, (i) => Effect.flatMap(Llm, (llm) => llm.chat(request(`d-old-${tag}`, i))))
    )
    rows.push(
      await measure(runtime, "(d) batch, 50 % cache hits", engineSlots, `${calls} at once`, (chat) =>
        allAtOnce(calls, (i) =>
          chat(request(i % 2 === 0 ? `d-new-${tag}` : `d-old-${tag}`, Math.floor(i / 2)), "batch")
        )
      )
    )
  }
  await runtime.dispose()
}
await sim.stop()

const table = rows.map((row) => {
  const s = summarize(row.outcome.latencies, row.answers, row.outcome.elapsedMs)
  const meanL = row.simulatedMs / row.answers
  const ceiling = slots / (meanL / 1000)
  return { row, s, meanL, ceiling }
})

const setup = [
  `Simulator in its own process: ${describeModel(llama)}; every request has num_predict ${predict}, so L ≤ ${predict} × ${tokenMs} ms = ${predict * tokenMs} ms (replies are 8..64 tokens before the cap, so some are shorter).`,
  `Ceiling S / L̄ per row: S = ${slots} slots, L̄ = mean eval_count × ${tokenMs} ms of that row's answers (nominal ${nominalCeiling.toFixed(0)} req/s at L = ${predict * tokenMs} ms). A cache hit costs no slot, so row (d) may pass 1.0× (its own ceiling is 2 × S / L̄ with 50 % hits).`,
  `Engine: Engine.layer with one backend, default cache/retry/timeouts; distinct prompts per call except the repeats of (d); ${calls} calls per row after a 16-call warm-up, ${sequentialCalls} for (a).`,
  `Latency is per call from its submission; "at once" rows submit every call at t = 0, so their p50 includes queueing in Sluice.`
]
const headers = [
  "tier",
  "engine slots",
  "callers",
  "req/s",
  "ceiling S/L̄",
  "× ceiling",
  "p50",
  "p99",
  "upstream calls",
  "cache lookups",
  "failures"
]
const tableRows = table.map(({ row, s, ceiling }) => [
  row.tier,
  row.engineSlots,
  row.callers,
  fmt.rps(s.rps),
  fmt.rps(ceiling),
  fmt.ratio(s.rps / ceiling),
  fmt.ms(s.p50),
  fmt.ms(s.p99),
  String(row.upstream),
  Object.entries(row.lookups)
    .map(([k, n]) => `${k} ${n}`)
    .join(", "),
  failureText(row.outcome.failures)
])
if (chatBatchRow !== undefined) {
  const rps = chatBatchRow.ok / chatBatchRow.seconds
  const ceiling = slots / (chatBatchRow.simulatedMs / chatBatchRow.answers / 1000)
  tableRows.splice(3, 0, [
    "(c') llm.chatBatch",
    String(slots),
    `${calls} at once`,
    fmt.rps(rps),
    fmt.rps(ceiling),
    fmt.ratio(rps / ceiling),
    "-",
    `${fmt.ms(chatBatchRow.seconds * 1000)} (all)`,
    String(chatBatchRow.upstream),
    "-",
    String(calls - chatBatchRow.ok)
  ])
}

Report.write({
  scenario: "tiers",
  title: "chat throughput by tier, against the ceiling S / L̄",
  setup,
  tables: [{ headers, rows: tableRows }],
  notes: [
    "(c) submits every call at once with priority batch: with a single class of traffic the scheduler's priorities cannot change throughput, so (c) should match (b); its p50 is queueing time in Sluice.",
    `Engine slots unset = Backends.defaults.slots (${String(backendDefaults.slots)}). A fixed number equal to the simulator's slots leaves each slot idle for one round trip plus Sluice's own work between two calls; more than that lets the simulator's queue keep its slots busy.`
  ],
  data: {
    slots,
    tokenMs,
    predict,
    callers,
    calls,
    rows: table.map(({ row, s, meanL, ceiling }) => ({
      ...row,
      outcome: undefined,
      failures: Object.fromEntries(row.outcome.failures),
      summary: s,
      meanLatencyMs: meanL,
      ceiling,
      cpuMs: row.outcome.cpuMs
    })),
    chatBatch: chatBatchRow
  }
})
Report.writeFile(
  "tiers.svg",
  barChart({
    title: "Sluice tiers: chat req/s through the engine",
    subtitle: `${describeModel(llama)}; num_predict ${predict}`,
    bars: [
      ...table.map(({ row, s, ceiling }) => ({
        label: `${row.tier}, slots ${row.engineSlots}`,
        value: s.rps,
        text: `${fmt.rps(s.rps)} req/s (${fmt.ratio(s.rps / ceiling)})`
      }))
    ],
    ceiling: { value: nominalCeiling, label: `ceiling S/L = ${nominalCeiling.toFixed(0)} req/s` }
  })
)
