/**
 * Embeddings bench: 10,000 distinct texts embedded (a) one `/api/embed` call per text through the bare
 * OllamaClient, 32 at once; (b) `llm.embedMany(model, texts)` through the engine (array calls of the batcher's
 * maximum batch), with the default adaptive limit and with a fixed one above the backend's slots; (c) array calls of 100 texts made by hand with the bare client, the reference
 * for what batching can reach. The simulator charges a fixed `requestMs` per request plus `promptTokenMs` per
 * input token, holding one of its slots, so batching has something to win and its ceiling can be stated:
 *
 *   one text per call:   S / (requestMs + t)            texts/s    (t = tokens per text × promptTokenMs)
 *   B texts per call:    S × B / (requestMs + B × t)    texts/s    -> S / t as B grows
 *
 *   npm run bench -- embeddings        or   node --import tsx bench/embeddings.ts
 */
import { Effect, ManagedRuntime } from "effect"
import { performance } from "node:perf_hooks"
import * as Backends from "../src/Llm/Backends.js"
import type { Slots } from "../src/Llm/Scheduler/Slots.js"
import * as Engine from "../src/Llm/Engine.js"
import { Llm } from "../src/Llm/Llm.js"
import { OllamaClient } from "../src/Ollama/OllamaClient.js"
import { embedTokens } from "../src/Simulator/Embedding.js"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { failureText, runEffects } from "./support/Load.js"
import * as Report from "./support/Report.js"
import { describeModel, model, simulator } from "./support/Server.js"
import { fmt, summarize } from "./support/Stats.js"

const count = Number(process.env.SLUICE_BENCH_TEXTS ?? 10_000)
const slots = 2
const requestMs = 2
const tokenMs = 0.05
const batch = 100
const minilm = model(
  defaultModels.find((m) => m.name === "all-minilm:latest")!,
  {
    numParallel: slots,
    loadMs: 0,
    requestMs,
    promptTokenMs: tokenMs,
    outputTokenMs: 0,
    jitter: 0
  }
)
const name = "all-minilm"
const texts = Array.from(
  { length: count },
  (_, i) => `passage ${i}: the river carries light across the old stone bridge`
)
const tokensPerText = texts.reduce((sum, t) => sum + embedTokens(t), 0) / count
const perText = tokensPerText * tokenMs
const ceilingSingle = slots / ((requestMs + perText) / 1000)
const ceilingBatch = (b: number) => (slots * b) / ((requestMs + b * perText) / 1000)
const ceilingLimit = slots / (perText / 1000)
/** embedMany sends array calls of the batcher's maximum batch. */
const engineBatch = 64

const sim = await simulator({ models: [minilm] })
const bare = ManagedRuntime.make(OllamaClient.layer({ host: sim.url, connections: 32 }))
const engine = ManagedRuntime.make(Engine.layer({ backends: [{ url: sim.url }] }))
/** The same engine with one slot more than the backend has: its queue stays fed while Sluice parses an answer. */
const engineAbove = ManagedRuntime.make(Engine.layer({ backends: [{ url: sim.url, slots: slots + 1 }] }))

interface Row {
  readonly name: string
  readonly shape: string
  readonly seconds: number
  readonly embedded: number
  readonly p50: number
  readonly p99: number
  readonly upstream: number
  readonly simCpuMs: number
  readonly clientCpuMs: number
  readonly ceiling: number
  readonly ceilingText: string
  readonly failures: string
  /** The engine's limit on the backend over the run (sampled every 5 ms): time-weighted mean, and at the end. */
  readonly limit?: { readonly mean: number; readonly end: number; readonly inFlight: number } | undefined
}

const progress = (text: string) => process.stderr.write(`[embeddings] ${text}\n`)

const measure = async (
  label: string,
  shape: string,
  ceiling: number,
  ceilingText: string,
  run: () => Promise<{ embedded: number; p50: number; p99: number; failures: string }>,
  slots?: Slots
): Promise<Row> => {
  progress(label)
  await sim.resetStats()
  const watch = slots === undefined ? undefined : watchLimit(slots)
  const simCpu = sim.cpuMs()
  const cpu = process.cpuUsage()
  const t0 = performance.now()
  const result = await run()
  const seconds = (performance.now() - t0) / 1000
  const c = process.cpuUsage(cpu)
  const limit = watch?.stop()
  const stats = await sim.stats()
  return {
    limit,
    name: label,
    shape,
    seconds,
    ...result,
    upstream: stats.requests["/api/embed"] ?? 0,
    simCpuMs: sim.cpuMs() - simCpu,
    clientCpuMs: (c.user + c.system) / 1000,
    ceiling,
    ceilingText
  }
}

const chunks = <A>(xs: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(xs.length / size) }, (_, i) => xs.slice(i * size, (i + 1) * size))

/** Samples the limit and the calls in flight of `slots` every 5 ms until `stop` (what the adaptive limit settles at). */
const watchLimit = (slots: Slots) => {
  let limits = 0
  let inFlight = 0
  let n = 0
  let last = 0
  const timer = setInterval(() => {
    const s = Effect.runSync(slots.snapshot)
    limits += s.limit
    inFlight += s.inFlight
    last = s.limit
    n++
  }, 5)
  return {
    stop: () => {
      clearInterval(timer)
      return { mean: limits / Math.max(1, n), end: last, inFlight: inFlight / Math.max(1, n) }
    }
  }
}
const slotsOf = (runtime: typeof engine) => runtime.runPromise(Effect.map(Backends.Backends, (b) => b.all[0]!.slots))

// Warm-up: sockets, JIT, the model load, on texts the measured runs do not use. 2,000 texts through each embedMany:
// with 300 the first measured embedMany row still ran partly cold (~8 % below the same engine measured again).
const warmTexts = Array.from({ length: 2_000 }, (_, i) => `warm-up text ${i}: a quiet field under the evening sky`)
await bare.runPromise(
  runEffects(300, 32, (i) => Effect.flatMap(OllamaClient, (c) => c.embed({ model: name, input: warmTexts[i]! })))
)
await engine.runPromise(Effect.flatMap(Llm, (llm) => llm.embedMany(name, warmTexts)))
await engineAbove.runPromise(Effect.flatMap(Llm, (llm) => llm.embedMany(name, warmTexts)))
progress("warmed up")

const rows: Array<Row> = []
rows.push(
  await measure(
    "bare OllamaClient, one text per call",
    "32 calls at once",
    ceilingSingle,
    "S / (requestMs + t)",
    async () => {
      const out = await bare.runPromise(
        runEffects(count, 32, (i) => Effect.flatMap(OllamaClient, (c) => c.embed({ model: name, input: texts[i]! })))
      )
      const s = summarize(out.latencies, count, out.elapsedMs)
      return { embedded: s.ok, p50: s.p50, p99: s.p99, failures: failureText(out.failures) }
    }
  )
)
/** One `embedMany` of every text through `runtime`'s engine, with the limit it ran under. */
const embedManyRow = async (label: string, runtime: typeof engine) =>
  measure(
    label,
    `one call, ${count.toLocaleString("en")} texts`,
    ceilingBatch(engineBatch),
    `S·B / (requestMs + B·t), B = ${engineBatch}`,
    async () => {
      const result = await runtime.runPromise(Effect.either(Effect.flatMap(Llm, (llm) => llm.embedMany(name, texts))))
      if (result._tag === "Left") return { embedded: 0, p50: NaN, p99: NaN, failures: `failed: ${result.left.message}` }
      const good = result.right.filter((v) => v.length === minilm.embeddingLength).length
      return { embedded: good, p50: NaN, p99: NaN, failures: good === count ? "none" : `${count - good} bad vectors` }
    },
    await slotsOf(runtime)
  )
rows.push(await embedManyRow("llm.embedMany(model, texts), slots adaptive (default)", engine))
rows.push(await embedManyRow(`llm.embedMany(model, texts), slots ${slots + 1}`, engineAbove))
rows.push(
  await measure(
    `bare OllamaClient, ${batch} texts per call (by hand)`,
    "4 calls at once",
    ceilingBatch(batch),
    `S·B / (requestMs + B·t), B = ${batch}`,
    async () => {
      const parts = chunks(texts, batch)
      const out = await bare.runPromise(
        runEffects(parts.length, 4, (i) =>
          Effect.flatMap(OllamaClient, (c) => c.embed({ model: name, input: [...parts[i]!] }))
        )
      )
      const s = summarize(out.latencies, parts.length, out.elapsedMs)
      return { embedded: s.ok * batch, p50: s.p50, p99: s.p99, failures: failureText(out.failures) }
    }
  )
)
await engine.dispose()
await engineAbove.dispose()
await bare.dispose()
await sim.stop()

Report.write({
  scenario: "embeddings",
  title: `${count.toLocaleString("en")} texts, one call per text versus batched`,
  setup: [
    `Simulator in its own process: ${describeModel(minilm)} (384-dimension vectors).`,
    `Each text is ${tokensPerText.toFixed(1)} tokens, so t = ${perText.toFixed(2)} ms of evaluation per text; a request also pays requestMs = ${requestMs} ms whatever its size.`,
    `Ceilings: one text per call ${fmt.rps(ceilingSingle)} texts/s; ${engineBatch} per call ${fmt.rps(ceilingBatch(engineBatch))} texts/s; ${batch} per call ${fmt.rps(ceilingBatch(batch))} texts/s; unbounded batches ${fmt.rps(ceilingLimit)} texts/s (${fmt.ratio(ceilingLimit / ceilingSingle)} the one-per-call ceiling at this latency model).`,
    `Outside the latency model: an answer of ${engineBatch} vectors is ~${Math.round((engineBatch * (minilm.embeddingLength ?? 384) * 12.4) / 1024)} KB of JSON (components written with 9 decimals, as Ollama's float32 values are), encoded by the simulator and parsed by the client on the same 2 cores.`,
    `Engine: Engine.layer with one backend, default slots (${String(Backends.defaults.slots)}), batching and cache; distinct texts, so every text is a miss. p50/p99 are per HTTP call.`
  ],
  tables: [
    {
      headers: [
        "client",
        "shape",
        "texts/s",
        "ceiling",
        "× ceiling",
        "× one-per-call ceiling",
        "seconds",
        "p50 / call",
        "p99 / call",
        "upstream calls",
        "engine limit: mean / end (mean in flight)",
        "sim CPU / text",
        "client CPU / text",
        "failures"
      ],
      rows: rows.map((r) => {
        const rate = r.embedded / r.seconds
        return [
          r.name,
          r.shape,
          fmt.rps(rate),
          `${fmt.rps(r.ceiling)} (${r.ceilingText})`,
          fmt.ratio(rate / r.ceiling),
          fmt.ratio(rate / ceilingSingle),
          r.seconds.toFixed(1),
          fmt.ms(r.p50),
          fmt.ms(r.p99),
          String(r.upstream),
          r.limit === undefined ? "-" : `${r.limit.mean.toFixed(2)} / ${r.limit.end} (${r.limit.inFlight.toFixed(2)})`,
          `${((r.simCpuMs / r.embedded) * 1000).toFixed(0)} µs`,
          `${((r.clientCpuMs / r.embedded) * 1000).toFixed(0)} µs`,
          r.failures
        ]
      })
    }
  ],
  notes: [
    `\`embedMany\` cuts the texts into array calls of ${engineBatch} (the batcher's maximum batch), one engine call each (budget, retry as one; the response cache only when asked), all at once through the backend's slots: the upstream call count shows how many. It is held to the ceiling of that batch size.`,
    "engine limit: the engine's limit on the backend, sampled every 5 ms over the row (adaptive: what it settled at, from where the warm-up of 2,000 texts left it), and the calls it had in flight.",
    "sim CPU / text is the simulator process's CPU time (from /proc) over the texts: when it nears the wall time per text × slots, the simulator is the limit, not the latency model."
  ],
  data: {
    count,
    slots,
    requestMs,
    tokenMs,
    tokensPerText,
    batch,
    ceilingSingle,
    ceilingBatch: ceilingBatch(batch),
    ceilingLimit,
    rows
  }
})
