/**
 * Soak bench: `sluice serve` (the built bundle, shipped defaults) in front of a faulty simulator (20 % 500s, 5 %
 * connection resets, 2 % stalls of 8 s) for an hour, driven by 16 closed-loop callers with mixed traffic (chat,
 * streamed chat, /api/embed, /v1/chat/completions; see support/Traffic.ts). Every interval (30 s, finer for short
 * runs) it reads Sluice's RSS, heap, event-loop delay and cache size from its /metrics, and the calls so far; it
 * reports the table over time, per-kind totals and the memory growth after warm-up (the first 10 % of the run).
 * Failures are counted, not thrown (0 are expected); the exit code is non-zero only if Sluice stops answering.
 *
 *   npm run bench -- soak --minutes 5    (one hour by default; SLUICE_BENCH_MINUTES=5 works too; npm run bench:soak)
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { soakMinutes, unknownFlags } from "./support/Options.js"
import * as Report from "./support/Report.js"
import * as Scrape from "./support/Scrape.js"
import { describeModel, model, simulator, sluiceServe } from "./support/Server.js"
import { type Sample, failedText, overTime, perKind, progress, trend, trendText } from "./support/SoakReport.js"
import { percentile } from "./support/Stats.js"
import { Traffic, failuresByLabel, mix } from "./support/Traffic.js"

const argv = process.argv.slice(2)
const unknown = unknownFlags(argv, ["minutes"])
if (unknown.length > 0) throw new Error(`soak: unknown flag(s) ${unknown.join(", ")}; it takes --minutes N`)
const minutes = soakMinutes(argv)
const runS = minutes * 60
const tickS = 2
const rowS = Math.min(30, Math.max(4, Math.round(runS / 12 / tickS) * tickS))
const warmupS = runS * 0.1
const callers = 16
const predict = 16
const tokenMs = 5
const faults = { error500: 0.2, reset: 0.05, stall: 0.02, stallMs: 8_000 }
const clientTimeoutMs = 120_000
const llama = model(defaultModels[0]!, {
  numParallel: 8,
  loadMs: 0,
  promptTokenMs: 0,
  outputTokenMs: tokenMs,
  jitter: 0
})
const nomic = model(defaultModels[2]!, {
  numParallel: 2,
  loadMs: 0,
  requestMs: 2,
  promptTokenMs: 0.05,
  outputTokenMs: 0,
  jitter: 0
})

/** The shipped defaults: nothing of the caller's SLUICE_* or OLLAMA_* settings, a fresh data directory. */
const dataDir = mkdtempSync(join(tmpdir(), "sluice-soak-"))
process.once("exit", () => rmSync(dataDir, { recursive: true, force: true }))
const serveEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SLUICE_|OLLAMA_)/.test(k))),
  SLUICE_DATA_DIR: dataDir
}

const git = (...args: Array<string>) => (spawnSync("git", args, { encoding: "utf8" }).stdout ?? "").trim()
const build = `bundle dist/sluice.mjs built ${statSync("dist/sluice.mjs").mtime.toISOString()}; HEAD ${git("rev-parse", "--short", "HEAD")}${
  git("status", "--porcelain", "src") === "" ? "" : " (src/ had uncommitted changes at the start)"
}`

const sim = await simulator({ models: [llama, nomic], faults })
const gw = await sluiceServe(sim.url, serveEnv)
const lagKey = (q: string) => `sluice_process_event_loop_lag_seconds{quantile="${q}"}`
const first = await Scrape.scrape(gw.url)
const slots = Scrape.required(first, `sluice_backend_slots{backend="${sim.url}"}`)

const traffic = new Traffic({
  url: gw.url,
  callers,
  chatModel: "llama3.2",
  embedModel: "nomic-embed-text",
  predict,
  clientTimeoutMs
})
const samples: Array<Sample> = []
let lag = { p99: NaN, max: NaN }
let last = { atMs: 0, cpuMs: gw.cpuMs(), ok: 0 }
let sluiceDown: string | undefined
const start = performance.now()

const okSoFar = () => [...traffic.tallies.values()].reduce((a, t) => a + t.ok, 0)
const maxOf = (a: number, b: number | undefined) => (b === undefined ? a : Number.isNaN(a) ? b : Math.max(a, b))

const sample = (series: Scrape.Series): Sample => {
  const atMs = performance.now() - start
  const seconds = (atMs - last.atMs) / 1000
  const cpuMs = gw.cpuMs()
  const ok = okSoFar()
  const window = Float64Array.from(traffic.takeWindow()).sort()
  const row: Sample = {
    atS: atMs / 1000,
    rssMb: Scrape.required(series, "sluice_process_resident_memory_bytes") / 2 ** 20,
    heapMb: Scrape.required(series, "sluice_process_heap_used_bytes") / 2 ** 20,
    lagP99Ms: lag.p99 * 1000,
    lagMaxMs: lag.max * 1000,
    cacheEntries: Scrape.sum(series, "sluice_cache_entries"),
    cacheMb: Scrape.sum(series, "sluice_cache_bytes") / 2 ** 20,
    cpuPct: ((cpuMs - last.cpuMs) / 1000 / seconds) * 100,
    ok,
    failed: Object.fromEntries(failuresByLabel(traffic.tallies)),
    okPerS: (ok - last.ok) / seconds,
    p99Ms: percentile(window, 0.99)
  }
  last = { atMs, cpuMs, ok }
  lag = { p99: NaN, max: NaN }
  process.stderr.write(`${progress(row)}\n`)
  return row
}

/** Scrapes every tick (each read of the event-loop delay covers the window since Sluice's previous sample). */
const scrapeTick = async (): Promise<Scrape.Series | undefined> => {
  try {
    const series = await Scrape.scrape(gw.url)
    lag = { p99: maxOf(lag.p99, series.get(lagKey("0.99"))), max: maxOf(lag.max, series.get(lagKey("1"))) }
    return series
  } catch (e) {
    sluiceDown = `Sluice stopped answering /metrics at ${((performance.now() - start) / 1000).toFixed(0)} s: ${String(e)}`
    return undefined
  }
}

process.stderr.write(`[soak] ${minutes} min, a row every ${rowS} s, warm-up ${warmupS.toFixed(0)} s\n`)
const running = traffic.run()
for (let tick = 1; tick * tickS <= runS && sluiceDown === undefined; tick++) {
  await new Promise((r) => setTimeout(r, Math.max(0, start + tick * tickS * 1000 - performance.now())))
  const series = await scrapeTick()
  if (series !== undefined && (tick * tickS) % rowS === 0) samples.push(sample(series))
}
traffic.stop()
await running
const drainedS = (performance.now() - start) / 1000 - runS
const end = sluiceDown === undefined ? await scrapeTick() : undefined
if (end !== undefined) samples.push({ ...sample(end), drained: true })
const simStats = await sim.stats()
await gw.stop()
await sim.stop()

const ok = okSoFar()
const failed = failuresByLabel(traffic.tallies)
const failedCount = [...failed.values()].reduce((a, b) => a + b, 0)
const rss = trend(samples, warmupS, (s) => s.rssMb)
const heap = trend(samples, warmupS, (s) => s.heapMb)
const chatMs = predict * tokenMs
const embedMs = 2 + 0.05 * 8
const share = (k: string) => mix.filter((m) => m === k).length / mix.length
const meanMs = (1 - share("embed")) * chatMs + share("embed") * embedMs
const stallShareMs = faults.stall * faults.stallMs
const ceiling = slots / ((meanMs + stallShareMs) / 1000)
const okPerS = ok / (samples.at(-1)?.atS ?? runS)
const lagP99s = samples.map((s) => s.lagP99Ms).filter((x) => !Number.isNaN(x))
const sluiceCounts = (e: Scrape.Series | undefined) =>
  e === undefined
    ? "unavailable (Sluice down)"
    : `cache hits ${Scrape.sum(e, "sluice_cache_hits_total")}, misses ${Scrape.sum(e, "sluice_cache_misses_total")}; ` +
      `retries ${Scrape.sum(e, "sluice_llm_retries_total")}; upstream requests ${Scrape.sum(e, "sluice_llm_upstream_requests_total")}; ` +
      `breaker trips ${Scrape.sum(e, "sluice_breaker_trips_total")}, calls refused by an open breaker ${Scrape.sum(e, "sluice_breaker_rejections_total")}`

const leftOver = (e: Scrape.Series | undefined) =>
  e === undefined
    ? "unavailable (Sluice down)"
    : `gateway requests in flight ${Scrape.sum(e, "sluice_http_requests_in_flight")}, ` +
      `calls in flight on the backend ${Scrape.sum(e, "sluice_backend_in_flight")}, queued ${Scrape.sum(e, "sluice_queue_depth")}`

Report.write({
  scenario: "soak",
  title: `${minutes} min of mixed traffic through sluice serve against a faulty backend`,
  setup: [
    ...(minutes < 60 ? [`A short run (${minutes} min), not the hour: its memory trend says little.`] : []),
    `Sluice: \`sluice serve\` (${build}), shipped defaults (no SLUICE_* / OLLAMA_* settings; fresh data dir); ${slots} backend slots (sluice_backend_slots).`,
    `Simulator in its own process: ${describeModel(llama)}; ${describeModel(nomic)}.`,
    `Faults on every inference request, retries included: ${faults.error500 * 100} % 500, ${faults.reset * 100} % connection reset, ${faults.stall * 100} % stall of ${faults.stallMs / 1000} s (then served).`,
    `Load: ${callers} closed-loop callers for ${minutes} min, mix per 20 calls: 8 chat, 6 streamed chat (/api/chat), 4 /api/embed (one text), 2 /v1/chat/completions; num_predict / max_tokens ${predict}; distinct prompts but every 10th non-streamed call per kind repeats one of 20 (cache hits on purpose); client timeout ${clientTimeoutMs / 1000} s.`,
    `Ceiling: Sluice's ${slots} slots over the mean time a call holds one, L̄ ≈ ${meanMs.toFixed(1)} ms modeled (${chatMs} ms per chat, ~${embedMs} ms per embed) + ${stallShareMs.toFixed(0)} ms of stalls (${faults.stall * 100} % × ${faults.stallMs / 1000} s): ≈ ${ceiling.toFixed(0)} req/s (retry backoff and cache hits not counted; without faults ${(slots / (meanMs / 1000)).toFixed(0)} req/s).`,
    `Samples: Sluice's /metrics every ${tickS} s, a row every ${rowS} s; warm-up = the first 10 % of the run (${warmupS.toFixed(0)} s).`
  ],
  tables: [
    overTime(samples),
    perKind(traffic.tallies),
    {
      title: "Summary",
      headers: ["figure", "value"],
      rows: [
        ["calls ok", `${ok} (${okPerS.toFixed(1)} req/s, ${((okPerS / ceiling) * 100).toFixed(0)} % of the ceiling)`],
        ["calls failed (0 expected)", `${failedCount}: ${failedText(Object.fromEntries(failed))}`],
        ["RSS after warm-up", trendText("RSS", rss)],
        ["heap after warm-up", trendText("heap used", heap)],
        [
          "event-loop delay p99",
          `median of the rows ${percentile(Float64Array.from(lagP99s).sort(), 0.5).toFixed(1)} ms, highest ${Math.max(...lagP99s).toFixed(1)} ms`
        ],
        ["Sluice's counters at the end", sluiceCounts(end)],
        ["left in Sluice after the drain (1 gateway request expected: the scrape itself)", leftOver(end)],
        ["faults the simulator injected", JSON.stringify(simStats.faults)],
        ["drain after the last row", `${drainedS.toFixed(1)} s for the calls in flight to end`]
      ]
    }
  ],
  notes: [
    ...(sluiceDown === undefined ? [] : [`**${sluiceDown}**`]),
    "A call fails on any non-2xx status, a network error, a body that is not a whole answer, or a stream that breaks, carries an error line or ends without done.",
    "Event-loop delay is Sluice's own `sluice_process_event_loop_lag_seconds` (monitorEventLoopDelay at 10 ms resolution, which the figures include: an idle loop reads ~10 ms). Each read covers the time since Sluice's previous sample (its sampler runs every 5 s, each scrape samples too); a row shows the highest p99 and max read during its interval, and the part of each 5 s between the previous scrape and Sluice's own sample is not seen.",
    "Growth in RSS while the cache fills (up to 10,000 entries / 64 MiB, TTL 10 min) is expected and bounded; the cache column tells it apart from a leak.",
    ...[...traffic.examples].map(([k, body]) => `first \`${k}\` body: \`${body.replace(/\s+/g, " ").slice(0, 200)}\``)
  ],
  data: { minutes, callers, predict, faults, slots, ceiling, rowS, warmupS, samples, rss, heap, simStats, sluiceDown }
})
if (sluiceDown !== undefined) process.exitCode = 1
