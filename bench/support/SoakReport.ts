/**
 * The soak's samples and what is read from them: the table over time, per-kind totals, and the memory trend after
 * warm-up (growth from the first sample at or after the warm-up's end to the last, and a least-squares slope).
 */
import { percentile } from "./Stats.js"
import type { Kind, Tally } from "./Traffic.js"

/** One row of the table over time: the state at `atS` seconds, counts cumulative, rates over the row's interval. */
export interface Sample {
  readonly atS: number
  readonly rssMb: number
  readonly heapMb: number
  /** Highest per-window p99 / max of Sluice's event-loop delay seen during the interval (ms). */
  readonly lagP99Ms: number
  readonly lagMaxMs: number
  readonly cacheEntries: number
  readonly cacheMb: number
  /** Sluice's CPU over the interval, % of one core. */
  readonly cpuPct: number
  readonly ok: number
  readonly failed: Readonly<Record<string, number>>
  /** Successful calls per second over the interval, and their p99 latency (ms). */
  readonly okPerS: number
  readonly p99Ms: number
  /** The row taken after the callers stopped and the calls in flight ended. */
  readonly drained?: boolean
}

const mb = (x: number) => x.toFixed(1)
const ms = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(1))

export const failedText = (failed: Readonly<Record<string, number>>): string => {
  const entries = Object.entries(failed).sort((a, b) => b[1] - a[1])
  return entries.length === 0 ? "0" : entries.map(([k, n]) => `${n} ${k}`).join(", ")
}

const clock = (s: number) => `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`

export const overTime = (samples: ReadonlyArray<Sample>) => ({
  title: "Over time (counts since the start; req/s and p99 over each interval)",
  headers: [
    "time",
    "rss MB",
    "heap MB",
    "event-loop p99 ms",
    "event-loop max ms",
    "cache entries / MB",
    "sluice CPU",
    "ok req/s",
    "p99 ms",
    "calls ok",
    "calls failed"
  ],
  rows: samples.map((s) => [
    s.drained === true ? `${clock(s.atS)} (drained)` : clock(s.atS),
    mb(s.rssMb),
    mb(s.heapMb),
    ms(s.lagP99Ms),
    ms(s.lagMaxMs),
    `${s.cacheEntries} / ${mb(s.cacheMb)}`,
    `${s.cpuPct.toFixed(0)} %`,
    s.okPerS.toFixed(1),
    ms(s.p99Ms),
    String(s.ok),
    failedText(s.failed)
  ])
})

export const perKind = (tallies: ReadonlyMap<Kind, Tally>) => ({
  title: "Per kind, whole run (latency of the successful calls)",
  headers: ["kind", "calls", "ok", "failed", "p50 ms", "p99 ms"],
  rows: [...tallies].map(([kind, t]) => {
    const sorted = Float64Array.from(t.latencies).sort()
    const failed = [...t.failed.values()].reduce((a, b) => a + b, 0)
    return [
      kind,
      String(t.ok + failed),
      String(t.ok),
      failedText(Object.fromEntries(t.failed)),
      ms(percentile(sorted, 0.5)),
      ms(percentile(sorted, 0.99))
    ]
  })
})

export interface Trend {
  readonly fromS: number
  readonly toS: number
  readonly from: number
  readonly to: number
  readonly max: number
  /** (to - from) / from. */
  readonly growth: number
  /** Least-squares slope over the samples after warm-up, per hour. */
  readonly perHour: number
}

/** The trend of `value` over the samples from the first one at or after `warmupS`; undefined with fewer than 2. */
export const trend = (samples: ReadonlyArray<Sample>, warmupS: number, value: (s: Sample) => number) => {
  const after = samples.filter((s) => s.atS >= warmupS)
  if (after.length < 2) return undefined
  const xs = after.map((s) => s.atS / 3600)
  const ys = after.map(value)
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length
  const my = ys.reduce((a, b) => a + b, 0) / ys.length
  const sxy = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0)
  const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0)
  const from = ys[0]!
  const to = ys.at(-1)!
  const t: Trend = {
    fromS: after[0]!.atS,
    toS: after.at(-1)!.atS,
    from,
    to,
    max: Math.max(...ys),
    growth: (to - from) / from,
    perHour: sxx === 0 ? NaN : sxy / sxx
  }
  return t
}

/** A slope over less than this much time is not extrapolated to an hour. */
const slopeMinS = 600

const signed = (x: number, digits: number) => `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`

export const trendText = (name: string, t: Trend | undefined): string =>
  t === undefined
    ? `${name}: too few samples after warm-up`
    : `${name}: ${mb(t.from)} MB at ${clock(t.fromS)} -> ${mb(t.to)} MB at ${clock(t.toS)}: ` +
      `${signed(t.growth * 100, 1)} % (max ${mb(t.max)} MB; ` +
      (t.toS - t.fromS >= slopeMinS
        ? `least-squares slope ${signed(t.perHour, 1)} MB/h)`
        : `no slope: less than ${slopeMinS / 60} min after warm-up)`)

/** One progress line for stderr. */
export const progress = (s: Sample): string =>
  `[soak] ${clock(s.atS)} rss ${mb(s.rssMb)} MB, heap ${mb(s.heapMb)} MB, event-loop p99 ${ms(s.lagP99Ms)} ms, ` +
  `${s.okPerS.toFixed(1)} ok/s, ${s.ok} ok, failed ${failedText(s.failed)}`
