/**
 * Memory bench: the resident memory that 10,000 queued calls cost. The simulator (own process) answers slowly
 * (60 s per call) on 4 slots; the engine's backend has 4 slots, so 4 calls are on the wire and the other 9,996
 * wait in Sluice. RSS and heap are read after a forced GC before the calls and once they are all queued; then
 * every call is interrupted (which also aborts the 4 upstream requests) and memory is read again. The same for
 * streamed calls: `llm.chatStream` drained, and `llm.chatStreamOpen` (which waits for its slot as an Effect, as the
 * gateway's streaming routes do) then drained; for `sluice serve` (the built bundle, `npm run build`, in its own
 * process, its memory read after GCs there: support/GatewayMemory.ts), streamed and unary /api/chat requests held
 * on their own connections; for the bare OllamaClient, whose undici pool (4 sockets) queues the requests itself;
 * and, for reference, Effect's own floor (a parked fiber, a drained stream that waits). Needs `--expose-gc`.
 * `SLUICE_BENCH_QUEUED` sets the count; `SLUICE_BENCH_ROWS=open,serve` runs only the rows whose name has one of these.
 *
 *   npm run bench -- memory        or   node --expose-gc --import tsx bench/memory.ts
 *   npm run bench -- memory --serve     with the `sluice serve` rows (minutes; build the bundle first)
 */
import { Effect, Fiber, Layer, ManagedRuntime, Stream } from "effect"
import type { ChatRequest } from "../src/Domain/Chat.js"
import * as Engine from "../src/Llm/Engine.js"
import { Llm } from "../src/Llm/Llm.js"
import { OllamaClient } from "../src/Ollama/OllamaClient.js"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { measureGateway } from "./support/GatewayMemory.js"
import * as Report from "./support/Report.js"
import { describeModel, model, simulator } from "./support/Server.js"

const count = Number(process.env.SLUICE_BENCH_QUEUED ?? 10_000)
/** Only the rows whose name contains one of these (comma-separated), when set: `SLUICE_BENCH_ROWS=open,drained`. */
const only = process.env.SLUICE_BENCH_ROWS?.split(",").filter((s) => s !== "")
/** The `sluice serve` rows take minutes (20,000 connections each): only with `--serve` or when SLUICE_BENCH_ROWS names them. */
const serve = process.argv.includes("--serve") || (only ?? []).some((s) => "sluice serve".includes(s))
const slots = 4
const slow = model(defaultModels[0]!, {
  numParallel: slots,
  loadMs: 0,
  promptTokenMs: 0,
  outputTokenMs: 1000,
  jitter: 0
})
const fast = model(defaultModels[1]!, { numParallel: slots, loadMs: 0, promptTokenMs: 0, outputTokenMs: 0, jitter: 0 })

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

const snapshot = async () => {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((r) => setTimeout(r, 50))
  }
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external }
}

const request = (tag: string, i: number, model = "llama3.2"): ChatRequest => ({
  model,
  messages: [{ role: "user", content: `queued ${tag} call ${i}: please answer` }],
  options: { num_predict: 60 }
})

interface Row {
  readonly client: string
  readonly before: Awaited<ReturnType<typeof snapshot>>
  readonly queued: Awaited<ReturnType<typeof snapshot>>
  readonly released: Awaited<ReturnType<typeof snapshot>>
  readonly inFlight: number
  /** The calls that waited, when not all `count` (a gateway row: connections the server never accepted). */
  readonly calls?: number
}

const sim = await simulator({ models: [slow, fast] })
const rows: Array<Row> = []

const measure = async <R>(
  client: string,
  runtime: ManagedRuntime.ManagedRuntime<R, never>,
  call: (i: number) => Effect.Effect<unknown, unknown, R>,
  warm: (i: number) => Effect.Effect<unknown, unknown, R>
) => {
  if (only !== undefined && !only.some((s) => client.includes(s))) return
  process.stderr.write(`[memory] ${client}\n`)
  await runtime.runPromise(
    Effect.forEach(
      Array.from({ length: 200 }, (_, i) => i),
      warm,
      { concurrency: 8 }
    )
  )
  const before = await snapshot()
  const fibers = await runtime.runPromise(
    Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) => Effect.forkDaemon(call(i))
    )
  )
  await new Promise((r) => setTimeout(r, 1500))
  const queued = await snapshot()
  const stats = await sim.stats()
  await runtime.runPromise(Fiber.interruptAll(fibers))
  const released = await snapshot()
  rows.push({ client, before, queued, released, inFlight: stats.inFlight["llama3.2:latest"] ?? 0 })
}

try {
  const engine = ManagedRuntime.make(Engine.layer({ backends: [{ url: sim.url, slots }] }))
  await measure(
    `Sluice engine (llm.chat, slots ${slots})`,
    engine,
    (i) => Effect.flatMap(Llm, (llm) => llm.chat(request("engine", i))),
    (i) => Effect.flatMap(Llm, (llm) => llm.chat(request("warm", i, "qwen3")))
  )
  await engine.dispose()
  const streaming = ManagedRuntime.make(Engine.layer({ backends: [{ url: sim.url, slots }] }))
  await measure(
    `Sluice engine (llm.chatStream drained, slots ${slots})`,
    streaming,
    (i) => Effect.flatMap(Llm, (llm) => Stream.runDrain(llm.chatStream(request("stream", i)))),
    (i) => Effect.flatMap(Llm, (llm) => Stream.runDrain(llm.chatStream(request("warm", i, "qwen3"))))
  )
  await streaming.dispose()
  // the gateway's way: the call waits for its slot and first chunk as an Effect, then the rest is drained
  const opened = ManagedRuntime.make(Engine.layer({ backends: [{ url: sim.url, slots }] }))
  await measure(
    `Sluice engine (llm.chatStreamOpen, then drained, slots ${slots})`,
    opened,
    (i) =>
      Effect.scoped(
        Effect.flatMap(Llm, (llm) => Effect.flatMap(llm.chatStreamOpen(request("open", i)), Stream.runDrain))
      ),
    (i) =>
      Effect.scoped(
        Effect.flatMap(Llm, (llm) => Effect.flatMap(llm.chatStreamOpen(request("warm", i, "qwen3")), Stream.runDrain))
      )
  )
  await opened.dispose()
  // the gateway: a queued HTTP stream against a queued HTTP unary call, both through `sluice serve`
  for (const stream of serve ? [true, false] : []) {
    const name = `sluice serve (/api/chat over HTTP, ${stream ? "streamed" : "stream: false"}, slots ${slots})`
    if (only !== undefined && !only.some((s) => name.includes(s))) continue
    process.stderr.write(`[memory] ${name}\n`)
    const g = await measureGateway({
      backend: sim.url,
      slots,
      count,
      path: "/api/chat",
      body: (i) => ({ ...request(stream ? "gateway stream" : "gateway", i), stream }),
      warm: (i) => ({ ...request("warm", i, "qwen3"), stream }),
      onTheWire: async () => (await sim.stats()).inFlight["llama3.2:latest"] ?? 0
    })
    process.stderr.write(
      `[memory] ${g.calls} requests held, ${g.answered} answered while the rest waited, ${g.failed} failed at the client\n`
    )
    rows.push({ client: name, ...g })
  }
  const bare = ManagedRuntime.make(OllamaClient.layer({ host: sim.url, connections: slots }))
  await measure(
    `Sluice bare OllamaClient (pool of ${slots} sockets)`,
    bare,
    (i) => Effect.flatMap(OllamaClient, (c) => c.chat(request("bare", i))),
    (i) => Effect.flatMap(OllamaClient, (c) => c.chat(request("warm", i, "qwen3")))
  )
  await bare.dispose()
  // Effect's own floor: what a fiber parked on one Effect.async, and a drained stream parked the same way, cost.
  const floor = ManagedRuntime.make(Layer.empty)
  const parked = Effect.async<void>((_resume) => {})
  await measure(
    "reference: a fiber parked on Effect.async",
    floor,
    () => parked,
    () => Effect.void
  )
  await measure(
    "reference: Stream.runDrain of a stream parked on Effect.async",
    floor,
    () => Stream.runDrain(Stream.fromEffect(parked)),
    () => Effect.void
  )
  await floor.dispose()
} finally {
  await sim.stop()
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`
const perCall = (bytes: number, calls = count) => `${(bytes / calls / 1024).toFixed(2)} KB`
Report.write({
  scenario: "memory",
  title: `resident memory of ${count.toLocaleString("en")} queued calls`,
  setup: [
    `Simulator in its own process: ${describeModel(slow)} and num_predict 60, so a call takes 60 s and none finishes during the measurement.`,
    `${count.toLocaleString("en")} distinct chat calls forked at once; ${slots} reach the simulator, the rest wait in the client. Memory after 3 forced GCs, 1.5 s after forking.`
  ],
  tables: [
    {
      headers: [
        "client",
        "RSS before",
        "RSS queued",
        "RSS delta",
        "per call",
        "heap delta",
        "per call (heap)",
        "RSS after interrupting",
        "on the wire"
      ],
      rows: rows.map((r) => [
        r.client,
        mb(r.before.rss),
        mb(r.queued.rss),
        mb(r.queued.rss - r.before.rss),
        perCall(r.queued.rss - r.before.rss, r.calls),
        mb(r.queued.heapUsed - r.before.heapUsed),
        perCall(r.queued.heapUsed - r.before.heapUsed, r.calls),
        mb(r.released.rss),
        String(r.inFlight)
      ])
    }
  ],
  notes: [
    "RSS does not shrink much after the calls end: V8 keeps the heap pages it grew into; the heap delta is the live memory of the queued calls.",
    "`chatStreamOpen` waits in the line as a plain Effect and builds its Stream once admitted, so a queued open costs like a queued unary call plus its Scope (`Effect.scoped` here); a drained `chatStream` cannot go below Effect's own `Stream.runDrain` floor (the last row).",
    "The `sluice serve` rows count only the gateway's process (its HTTP server, router, middleware and engine per request); per call divides by the requests it held (a connection the server never accepted is left out).",
    "The reference rows are Effect's own floor, with no Sluice code: a fiber that waits, and `Stream.runDrain` of a stream that waits (a forked fiber, two Deferreds, a forked scope and the channel executors of Effect 3.22's channel runner). A queued engine stream costs that floor plus its call and its place in the line."
  ],
  data: { count, slots, rows }
})
