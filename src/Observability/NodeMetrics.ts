/**
 * The Node process metrics under the names prom-client's `collectDefaultMetrics` gives them (`process_*`,
 * `nodejs_*`), so stock Node.js dashboards and alerts work on Sluice unchanged. Sluice's own `sluice_process_*`
 * metrics (`ProcessMetrics.ts`) stay: these are the same facts under the names other tools expect.
 *
 * Choices:
 * - Read at scrape time, not on a timer: `scrape` reads `process`, `v8` and `/proc/self` when `/metrics` is asked
 *   for and renders the text itself, beside Effect's registry (whose catalog is Sluice's own, documented metrics).
 * - Two things cannot be read at an instant, and start at the first scrape (process-wide, once): the event loop
 *   delay histogram (`perf_hooks.monitorEventLoopDelay`, read then reset at each scrape, as prom-client does) and
 *   a GC observer (`PerformanceObserver` on `gc` entries) filling `nodejs_gc_duration_seconds`. Neither holds the
 *   event loop open.
 * - Not prom-client itself: it keeps a second registry with its own renderer and GC observer beside Effect's, for
 *   what is ~150 lines of reading `process`; the names, labels and buckets below follow its defaults.
 * - `/proc/self` (virtual memory, data segment, file descriptors) exists on Linux only; elsewhere those are left
 *   out, like prom-client does.
 */
import { Effect } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { constants, type IntervalHistogram, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks"
import { getHeapSpaceStatistics } from "node:v8"

type Labels = Readonly<Record<string, string>>
type Sample = readonly [suffix: string, labels: Labels, value: number]
interface Family {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly help: string
  readonly samples: ReadonlyArray<Sample>
}

/** prom-client's `nodejs_gc_duration_seconds` buckets. */
export const gcBuckets = [0.001, 0.01, 0.1, 1, 2, 5] as const

const gcKinds: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb"
}

interface GcKind {
  readonly counts: Array<number>
  sum: number
  count: number
}

/** What runs between scrapes, started by the first one. */
interface Monitors {
  readonly loop: IntervalHistogram
  readonly gc: Map<string, GcKind>
}

let monitors: Monitors | undefined

const start = (): Monitors => {
  if (monitors !== undefined) return monitors
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  const gc = new Map<string, GcKind>()
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail = (entry as { readonly detail?: { readonly kind?: number } }).detail
      const kind = gcKinds[detail?.kind ?? -1] ?? "unknown"
      const seconds = entry.duration / 1000
      let k = gc.get(kind)
      if (k === undefined) gc.set(kind, (k = { counts: gcBuckets.map(() => 0), sum: 0, count: 0 }))
      gcBuckets.forEach((le, i) => {
        if (seconds <= le) k.counts[i]! += 1
      })
      k.sum += seconds
      k.count += 1
    }
  }).observe({ entryTypes: ["gc"] })
  monitors = { loop, gc }
  return monitors
}

const none: Labels = {}
const one = (name: string, type: Family["type"], help: string, value: number): Family => ({
  name,
  type,
  help,
  samples: [["", none, value]]
})
const byLabel = (name: string, help: string, label: string, values: Iterable<readonly [string, number]>): Family => ({
  name,
  type: "gauge",
  help,
  samples: Array.from(values, ([v, n]) => ["", { [label]: v }, n] as const)
})

/** `/proc/self/status` fields in bytes (VmSize, VmRSS, VmData), or undefined off Linux. */
const procStatus = (): Record<string, number> | undefined => {
  try {
    const text = readFileSync("/proc/self/status", "utf8")
    return Object.fromEntries(Array.from(text.matchAll(/^(Vm\w+):\s+(\d+) kB$/gm), (m) => [m[1]!, Number(m[2]) * 1024]))
  } catch {
    return undefined
  }
}

const fds = (): ReadonlyArray<Family> => {
  try {
    // readdirSync holds one descriptor of its own while it reads the directory
    const open = readdirSync("/proc/self/fd").length - 1
    const limit = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1]
    return [
      one("process_open_fds", "gauge", "Number of open file descriptors.", open),
      ...(limit === undefined
        ? []
        : [one("process_max_fds", "gauge", "Maximum number of open file descriptors.", +limit)])
    ]
  } catch {
    return []
  }
}

const counts = (items: ReadonlyArray<string>) => {
  const out = new Map<string, number>()
  for (const item of items) out.set(item, (out.get(item) ?? 0) + 1)
  return out
}

/** Handles and requests by constructor name: Node's own (undocumented) lists, as prom-client reads them. */
const handles = (): ReadonlyArray<Family> => {
  const p = process as unknown as { _getActiveHandles?: () => Array<object>; _getActiveRequests?: () => Array<object> }
  const names = (list: Array<object> | undefined) => (list ?? []).map((x) => x?.constructor?.name ?? "unknown")
  const h = names(p._getActiveHandles?.())
  const r = names(p._getActiveRequests?.())
  const resources = process.getActiveResourcesInfo()
  return [
    byLabel("nodejs_active_handles", "Number of active libuv handles grouped by handle type.", "type", counts(h)),
    one("nodejs_active_handles_total", "gauge", "Total number of active handles.", h.length),
    byLabel("nodejs_active_requests", "Number of active libuv requests grouped by request type.", "type", counts(r)),
    one("nodejs_active_requests_total", "gauge", "Total number of active requests.", r.length),
    byLabel("nodejs_active_resources", "Resources keeping the event loop alive, by type.", "type", counts(resources)),
    one("nodejs_active_resources_total", "gauge", "Total number of active resources.", resources.length)
  ]
}

const memory = (): ReadonlyArray<Family> => {
  const m = process.memoryUsage()
  const status = procStatus()
  const spaces = getHeapSpaceStatistics().map((s) => [s.space_name.replace(/_space$/, ""), s] as const)
  const space = (what: string, read: (s: (typeof spaces)[number][1]) => number) =>
    byLabel(`nodejs_heap_space_size_${what}_bytes`, `Process heap space size ${what} from Node.js in bytes.`, "space", [
      ...spaces.map(([name, s]) => [name, read(s)] as const)
    ])
  return [
    one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", status?.VmRSS ?? m.rss),
    ...(status?.VmSize === undefined
      ? []
      : [one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", status.VmSize)]),
    ...(status?.VmData === undefined
      ? []
      : [one("process_heap_bytes", "gauge", "Process heap size in bytes.", status.VmData)]),
    one("nodejs_heap_size_total_bytes", "gauge", "Process heap size from Node.js in bytes.", m.heapTotal),
    one("nodejs_heap_size_used_bytes", "gauge", "Process heap size used from Node.js in bytes.", m.heapUsed),
    one("nodejs_external_memory_bytes", "gauge", "Node.js external memory size in bytes.", m.external),
    space("total", (s) => s.space_size),
    space("used", (s) => s.space_used_size),
    space("available", (s) => s.space_available_size)
  ]
}

const startTime = Math.round(Date.now() / 1000 - process.uptime())

const cpuAndVersion = (): ReadonlyArray<Family> => {
  const cpu = process.cpuUsage()
  const [major, minor, patch] = process.versions.node.split(".")
  const version = { version: process.version, major: major ?? "", minor: minor ?? "", patch: patch ?? "" }
  return [
    one("process_cpu_user_seconds_total", "counter", "Total user CPU time spent in seconds.", cpu.user / 1e6),
    one("process_cpu_system_seconds_total", "counter", "Total system CPU time spent in seconds.", cpu.system / 1e6),
    one(
      "process_cpu_seconds_total",
      "counter",
      "Total user and system CPU time spent in seconds.",
      (cpu.user + cpu.system) / 1e6
    ),
    one("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", startTime),
    { name: "nodejs_version_info", type: "gauge", help: "Node.js version info.", samples: [["", version, 1]] }
  ]
}

/** The event loop delay since the previous scrape (then reset), and `lag`: how late a `setImmediate` ran now. */
const eventLoop = (m: Monitors, lag: number): ReadonlyArray<Family> => {
  const h = m.loop
  const empty = h.count === 0
  const s = (ns: number) => (empty || !Number.isFinite(ns) ? 0 : ns / 1e9)
  const stats = [
    ["min", "minimum", s(h.min)],
    ["max", "maximum", s(h.max)],
    ["mean", "mean", s(h.mean)],
    ["stddev", "standard deviation", s(h.stddev)],
    ["p50", "50th percentile", s(h.percentile(50))],
    ["p90", "90th percentile", s(h.percentile(90))],
    ["p99", "99th percentile", s(h.percentile(99))]
  ] as const
  h.reset()
  return [
    one("nodejs_eventloop_lag_seconds", "gauge", "Lag of event loop in seconds.", lag),
    ...stats.map(([key, what, v]) =>
      one(`nodejs_eventloop_lag_${key}_seconds`, "gauge", `The ${what} of the recorded event loop delays.`, v)
    )
  ]
}

const gcFamily = (m: Monitors): Family => ({
  name: "nodejs_gc_duration_seconds",
  type: "histogram",
  help: "Garbage collection duration by kind, one of major, minor, incremental or weakcb.",
  samples: Array.from(m.gc, ([kind, k]) => [
    ...gcBuckets.map((le, i) => ["_bucket", { kind, le: String(le) }, k.counts[i]!] as const),
    ["_bucket", { kind, le: "+Inf" }, k.count] as const,
    ["_sum", { kind }, k.sum] as const,
    ["_count", { kind }, k.count] as const
  ]).flat()
})

const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

/** Prometheus text format 0.0.4 of `families` (ends with a newline). */
export const render = (families: ReadonlyArray<Family>): string =>
  families
    .flatMap((f) => [
      `# HELP ${f.name} ${f.help}`,
      `# TYPE ${f.name} ${f.type}`,
      ...f.samples.map(([suffix, labels, value]) => {
        const text = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`)
        return `${f.name}${suffix}${text.length === 0 ? "" : `{${text.join(",")}}`} ${String(value)}`
      })
    ])
    .join("\n") + "\n"

/** How late a `setImmediate` queued now runs, in seconds (prom-client's `nodejs_eventloop_lag_seconds`). */
const immediateLag: Effect.Effect<number> = Effect.async<number>((resume) => {
  const from = process.hrtime.bigint()
  const timer = setImmediate(() => resume(Effect.succeed(Number(process.hrtime.bigint() - from) / 1e9)))
  return Effect.sync(() => clearImmediate(timer))
})

/** Every family, read now. */
export const families: Effect.Effect<ReadonlyArray<Family>> = Effect.map(immediateLag, (lag) => {
  const m = start()
  return [...cpuAndVersion(), ...memory(), ...fds(), ...handles(), ...eventLoop(m, lag), gcFamily(m)]
})

/** The stock Node process metrics as Prometheus text, read now. */
export const scrape: Effect.Effect<string> = Effect.map(families, render)
