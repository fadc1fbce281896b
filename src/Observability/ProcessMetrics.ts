/**
 * Node process metrics, sampled into the gauges and the CPU counter of `Metrics.ts` (named `sluice_process_*`
 * so one prefix finds everything Sluice exports): memory, CPU time, event loop delay, uptime, live handles.
 *
 * The event loop delay comes from `perf_hooks.monitorEventLoopDelay`, a histogram Node fills in the background;
 * each sample reads its median, 99th percentile and maximum since the previous sample, then resets it.
 */
import { Effect, Metric } from "effect"
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks"
import type { Scope } from "effect"
import * as Labels from "./Labels.js"
import * as Metrics from "./Metrics.js"

/** CPU time already counted, in microseconds (process-wide, so concurrent samplers never count twice). */
const counted = { user: 0, system: 0 }

const startSeconds = Date.now() / 1000 - process.uptime()

const cpu = Effect.suspend(() => {
  const usage = process.cpuUsage()
  const user = Math.max(0, usage.user - counted.user)
  const system = Math.max(0, usage.system - counted.system)
  counted.user = Math.max(counted.user, usage.user)
  counted.system = Math.max(counted.system, usage.system)
  return Effect.zipRight(
    Metric.incrementBy(Labels.tag(Metrics.processCpu, { mode: "user" }), user / 1e6),
    Metric.incrementBy(Labels.tag(Metrics.processCpu, { mode: "system" }), system / 1e6)
  )
})

const lag = (loop: IntervalHistogram) =>
  Effect.suspend(() => {
    if (loop.count === 0) return Effect.void
    const seconds = (ns: number) => ns / 1e9
    const values = [
      ["0.5", seconds(loop.percentile(50))],
      ["0.99", seconds(loop.percentile(99))],
      ["1", seconds(loop.max)]
    ] as const
    loop.reset()
    return Effect.forEach(
      values,
      ([quantile, value]) => Metric.set(Labels.tag(Metrics.processEventLoopLag, { quantile }), value),
      { discard: true }
    )
  })

/** Samples the process now; with `loop`, also the event loop delay since the previous sample. */
export const sample = (loop?: IntervalHistogram): Effect.Effect<void> =>
  Effect.suspend(() => {
    const memory = process.memoryUsage()
    return Effect.all(
      [
        Metric.set(Metrics.processResident, memory.rss),
        Metric.set(Metrics.processHeapUsed, memory.heapUsed),
        Metric.set(Metrics.processHeapTotal, memory.heapTotal),
        Metric.set(Metrics.processExternal, memory.external),
        Metric.set(Metrics.processUptime, process.uptime()),
        Metric.set(Metrics.processStartTime, startSeconds),
        Metric.set(Metrics.processActiveResources, process.getActiveResourcesInfo().length),
        cpu,
        loop === undefined ? Effect.void : lag(loop)
      ],
      { discard: true }
    )
  })

/** Starts the event loop monitor for the scope's lifetime and returns the sampler that reads it. */
export const make: Effect.Effect<Effect.Effect<void>, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => {
      const loop = monitorEventLoopDelay({ resolution: 10 })
      loop.enable()
      return loop
    }),
    (loop) => Effect.sync(() => loop.disable())
  ),
  (loop) => sample(loop)
)
