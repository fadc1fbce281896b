/**
 * The startup checks of the process and its surroundings: configuration, Node, the clock, the data directory
 * and its disk, the listen port, authentication beyond loopback, limits against each other, memory limits and the
 * telemetry endpoint. Each is a `StartupValidator.Check`; none changes anything it checks.
 */
import { Duration, Effect, Option } from "effect"
import { constants } from "node:fs"
import { access, mkdir, rm, writeFile } from "node:fs/promises"
import { createServer } from "node:net"
import { totalmem } from "node:os"
import { join } from "node:path"
import { getHeapStatistics } from "node:v8"
import * as Retry from "../Llm/Retry.js"
import * as Timeouts from "../Llm/Timeouts.js"
import { freeDiskMb } from "../Observability/HealthProcess.js"
import { authConfigured } from "./ChecksAuth.js"
import type { Check, Context, Outcome, Row } from "./StartupValidator.js"

const pass = (detail: string): Outcome => ({ ok: true, detail })
const fail = (detail: string, fix: string): Outcome => ({ ok: false, detail, fix })
const skip = (detail: string): Outcome => ({ ok: true, skipped: true, detail })
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e))
const ms = (d: Duration.DurationInput | undefined) =>
  d === undefined ? undefined : Duration.toMillis(Duration.decode(d))

/** Problems with single values (each must make sense on its own). */
export const configProblems = (c: Context): ReadonlyArray<string> => {
  const { settings, backend } = c.engine
  const problems: Array<string> = []
  const positive = (label: string, value: number | undefined) => {
    if (value !== undefined && !(value > 0)) problems.push(`${label} must be positive (got ${value})`)
  }
  if (!Number.isInteger(c.port) || c.port < 0 || c.port > 65535) problems.push(`port ${c.port} is not 0-65535`)
  if (c.host.trim() === "") problems.push("host is empty")
  if (c.urls.length === 0) problems.push("no Ollama URL")
  positive("SLUICE_DEADLINE", ms(settings.timeouts?.deadline))
  positive("SLUICE_CACHE_TTL", ms(settings.cache?.ttl))
  positive("SLUICE_CACHE_MAX_ENTRIES", settings.cache?.maxEntries)
  positive("SLUICE_CACHE_MAX_BYTES", settings.cache?.maxBytes)
  positive("SLUICE_BACKEND_SLOTS", typeof backend.slots === "number" ? backend.slots : undefined)
  positive("SLUICE_BACKEND_RPS", backend.rateLimit?.requestsPerSecond)
  positive("SLUICE_BACKEND_TPM", backend.rateLimit?.tokensPerMinute)
  positive("SLUICE_HEALTH_INTERVAL", Duration.toMillis(c.health.interval))
  positive("SLUICE_HEALTH_TIMEOUT", Duration.toMillis(c.health.timeout))
  const retries = settings.retry?.maxRetries
  if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0))
    problems.push(`SLUICE_RETRY_MAX must be a whole number >= 0 (got ${retries})`)
  if (!(c.limits.minFreeDiskMb >= 0)) problems.push(`SLUICE_MIN_FREE_DISK_MB must be >= 0`)
  return problems
}

/** Bounds that contradict each other: the looser one can never act. */
export const limitProblems = (c: Context): ReadonlyArray<string> => {
  const timeouts = { ...Timeouts.defaults, ...c.engine.settings.timeouts }
  const deadline = ms(timeouts.deadline)
  const retryDeadline = ms(c.engine.settings.retry?.deadline ?? Retry.defaults.deadline)
  const problems: Array<string> = []
  const within = (label: string, value: number | undefined) => {
    if (deadline !== undefined && value !== undefined && value > deadline)
      problems.push(
        `${label} (${Duration.format(value)}) is longer than the call deadline (${Duration.format(deadline)})`
      )
  }
  within("the attempt timeout", ms(timeouts.attempt))
  within("the first-token timeout", ms(timeouts.firstToken))
  within("the idle timeout", ms(timeouts.idle))
  within("the retry window", retryDeadline)
  if (Duration.greaterThanOrEqualTo(c.health.timeout, c.health.interval))
    problems.push("SLUICE_HEALTH_TIMEOUT is not shorter than SLUICE_HEALTH_INTERVAL")
  return problems
}

const configValid: (c: Context) => Check = (c) => ({
  name: "config-valid",
  severity: "fatal",
  run: Effect.sync(() => {
    const problems = configProblems(c)
    return problems.length === 0
      ? pass(`${c.host}:${c.port}, backend ${c.mode}, ${c.urls.length} Ollama URL(s), data in ${c.dataDir}`)
      : fail(problems.join("; "), "correct these flags or environment variables (see docs/operations.md)")
  })
})

const limitsConsistent: (c: Context) => Check = (c) => ({
  name: "limits-consistent",
  severity: "warning",
  run: Effect.sync(() => {
    const problems = limitProblems(c)
    return problems.length === 0
      ? pass("timeouts fit within the call deadline; health timeout < interval")
      : fail(problems.join("; "), "raise SLUICE_DEADLINE, or shorten the bound that cannot act")
  })
})

/** The oldest Node Sluice supports (package.json `engines`). */
export const minimumNode = [20, 18, 1] as const

export const atLeast = (version: string, minimum: ReadonlyArray<number>): boolean => {
  const parts = version.replace(/^v/, "").split(/[.-]/).map(Number)
  for (let i = 0; i < minimum.length; i++) {
    const p = parts[i] ?? 0
    if (Number.isNaN(p)) return false
    if (p !== minimum[i]) return p > minimum[i]!
  }
  return true
}

const nodeVersion: Check = {
  name: "node-version",
  severity: "fatal",
  run: Effect.sync(() =>
    atLeast(process.version, minimumNode)
      ? pass(`Node ${process.version}`)
      : fail(
          `Node ${process.version} is older than ${minimumNode.join(".")}`,
          `install Node ${minimumNode.join(".")} or newer`
        )
  )
}

const clockSane: Check = {
  name: "clock-sane",
  severity: "fatal",
  run: Effect.promise(async () => {
    const wallBefore = Date.now()
    const monoBefore = performance.now()
    await new Promise((resolve) => setTimeout(resolve, 50))
    const drift = Math.abs(Date.now() - wallBefore - (performance.now() - monoBefore))
    const year = new Date().getUTCFullYear()
    if (year < 2024 || year > 2100)
      return fail(
        `the system clock says ${new Date().toISOString()}`,
        "set the clock (enable NTP: timedatectl set-ntp true)"
      )
    if (drift > 1_000)
      return fail(
        `the wall clock moved ${Math.round(drift)} ms off the monotonic clock in 50 ms`,
        "check NTP and the clock source"
      )
    return pass(`${new Date().toISOString()}, drift ${Math.round(drift)} ms over 50 ms`)
  })
}

/** Creates the data directory if needed, then writes and removes a probe file. */
export const probeDataDir = (dir: string) =>
  Effect.tryPromise({
    try: async () => {
      await mkdir(dir, { recursive: true })
      await access(dir, constants.W_OK)
      const probe = join(dir, `.sluice-write-probe-${process.pid}`)
      await writeFile(probe, "ok", { flush: true })
      await rm(probe)
    },
    catch: (e) => new Error(errorText(e))
  })

const dataDirWritable = (c: Context): Check => ({
  name: "data-dir-writable",
  severity: "fatal",
  run: probeDataDir(c.dataDir).pipe(
    Effect.as(pass(`${c.dataDir} exists and is writable`)),
    Effect.catchAll((e) =>
      Effect.succeed(
        fail(
          `cannot write to ${c.dataDir}: ${e.message}`,
          "create the directory and give Sluice's user write access to it, or point --data-dir (SLUICE_DATA_DIR) elsewhere"
        )
      )
    )
  )
})

const freeDisk = (c: Context): Check => ({
  name: "free-disk",
  severity: "fatal",
  run: freeDiskMb(c.dataDir).pipe(
    Effect.map((free) =>
      free >= c.limits.minFreeDiskMb
        ? pass(`${free} MB free for ${c.dataDir} (minimum ${c.limits.minFreeDiskMb} MB)`)
        : fail(
            `${free} MB free for ${c.dataDir}, below the minimum of ${c.limits.minFreeDiskMb} MB`,
            "free disk space, move the data directory, or lower SLUICE_MIN_FREE_DISK_MB"
          )
    ),
    Effect.catchAll((e) => Effect.succeed(fail(e.message, "check that the data directory's filesystem is mounted")))
  )
})

const bind = (host: string, port: number) =>
  Effect.async<void, NodeJS.ErrnoException>((resume) => {
    const server = createServer()
    server.once("error", (e) => resume(Effect.fail(e as NodeJS.ErrnoException)))
    server.listen({ host, port, exclusive: true }, () => server.close(() => resume(Effect.void)))
    return Effect.sync(() => server.close())
  })

const portFixes: Record<string, string> = {
  EADDRINUSE: "stop the process using it (ss -ltnp), or choose another --port (SLUICE_PORT)",
  EADDRNOTAVAIL: "--host (SLUICE_HOST) must be an address of this machine, or 0.0.0.0",
  EACCES: "ports below 1024 need privileges: use a higher --port"
}

const cannotListen = (c: Pick<Context, "host" | "port">, e: NodeJS.ErrnoException) =>
  fail(
    `cannot listen on ${c.host}:${c.port}: ${e.code ?? e.message}`,
    portFixes[e.code ?? ""] ?? "choose another --host/--port"
  )

const listenPortFree = (c: Context): Check => ({
  name: "listen-port-free",
  severity: "fatal",
  run:
    c.port === 0
      ? Effect.succeed(skip("port 0: the system picks a free port"))
      : c.bindsPort === true
        ? Effect.succeed(skip("serve binds it next and reports its own error"))
        : bind(c.host, c.port).pipe(
            Effect.as(pass(`${c.host}:${c.port} is free`)),
            Effect.catchAll((e) => Effect.succeed(cannotListen(c, e)))
          )
})

/**
 * The row of the port check for a listen that failed for real (`serve`, `Context.bindsPort`): the same detail
 * and advice the probe would have given.
 */
export const listenFailed = (c: Pick<Context, "host" | "port">, e: NodeJS.ErrnoException): Row => {
  const { detail, fix } = cannotListen(c, e)
  return { name: "listen-port-free", severity: "fatal", result: "fail", detail, fix }
}

const memoryLimits = (c: Context): Check => ({
  name: "memory-limits",
  severity: "warning",
  run: Effect.sync(() => {
    const heapLimitMb = Math.round(getHeapStatistics().heap_size_limit / 1024 / 1024)
    const totalMb = Math.round(totalmem() / 1024 / 1024)
    const problems: Array<string> = []
    if (c.limits.maxHeapMb !== undefined && c.limits.maxHeapMb > heapLimitMb)
      problems.push(`SLUICE_MAX_HEAP_MB (${c.limits.maxHeapMb}) is above V8's heap limit (${heapLimitMb} MB)`)
    if (c.limits.maxRssMb !== undefined && c.limits.maxRssMb > totalMb)
      problems.push(`SLUICE_MAX_RSS_MB (${c.limits.maxRssMb}) is above the machine's memory (${totalMb} MB)`)
    return problems.length === 0
      ? pass(`heap limit ${heapLimitMb} MB, machine memory ${totalMb} MB`)
      : fail(problems.join("; "), "lower the limit, or raise node's --max-old-space-size")
  })
})

const telemetryReachable = (c: Context): Check => ({
  name: "telemetry-reachable",
  severity: "warning",
  run: Option.match(c.telemetryUrl, {
    onNone: () => Effect.succeed(skip("no OTLP endpoint configured: traces stay in the process")),
    onSome: (url) =>
      Effect.tryPromise({
        try: (signal) =>
          fetch(url, { method: "POST", body: "{}", headers: { "content-type": "application/json" }, signal }),
        catch: (e) => new Error(errorText(e))
      }).pipe(
        Effect.map((r) => pass(`${url} answers (HTTP ${r.status})`)),
        Effect.catchAll((e) =>
          Effect.succeed(
            fail(
              `${url} does not answer: ${e.message}`,
              "start the collector or correct SLUICE_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT"
            )
          )
        )
      )
  })
})

/** The checks of the process and its surroundings, in the order of the table. */
export const systemChecks = (c: Context): ReadonlyArray<Check> => [
  configValid(c),
  nodeVersion,
  clockSane,
  dataDirWritable(c),
  freeDisk(c),
  listenPortFree(c),
  authConfigured(c),
  limitsConsistent(c),
  memoryLimits(c),
  telemetryReachable(c)
]
