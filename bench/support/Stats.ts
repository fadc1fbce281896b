/** Latency percentiles and rates of one measured run. */

export interface Summary {
  readonly calls: number
  readonly ok: number
  readonly seconds: number
  /** Successful calls per second of wall time. */
  readonly rps: number
  readonly p50: number
  readonly p99: number
  readonly mean: number
}

/** Nearest-rank percentile of sorted values (ms). */
export const percentile = (sorted: ArrayLike<number>, p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!

/** `latencies` of the successful calls (ms), `calls` attempted, `elapsedMs` of wall time. */
export const summarize = (latencies: ReadonlyArray<number>, calls: number, elapsedMs: number): Summary => {
  const sorted = Float64Array.from(latencies).sort()
  const sum = sorted.reduce((a, b) => a + b, 0)
  return {
    calls,
    ok: sorted.length,
    seconds: elapsedMs / 1000,
    rps: sorted.length / (elapsedMs / 1000),
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    mean: sorted.length === 0 ? NaN : sum / sorted.length
  }
}

export const fmt = {
  rps: (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1)),
  ms: (x: number) => (Number.isNaN(x) ? "-" : x >= 100 ? `${x.toFixed(0)} ms` : `${x.toFixed(1)} ms`),
  ratio: (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : "-"),
  pct: (x: number) => `${(x * 100).toFixed(1)} %`
}
