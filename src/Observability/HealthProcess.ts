/**
 * The `process` health component: heap used against the heap limit (`SLUICE_MAX_HEAP_MB`, else V8's own),
 * RSS against `SLUICE_MAX_RSS_MB` when set, and free disk in the data directory against
 * `SLUICE_MIN_FREE_DISK_MB`. Above `memoryDegradedShare` of a limit (or below twice the free-disk minimum)
 * it is degraded; past a limit it is down. Not critical: a process near its limits still serves.
 */
import { Effect } from "effect"
import { statfs } from "node:fs/promises"
import { dirname, resolve } from "node:path"
import { getHeapStatistics } from "node:v8"
import type { Component, Result, Status } from "./Health.js"
import { defaults, type Limits } from "./HealthConfig.js"

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10

/** Free megabytes for unprivileged users on the filesystem of `path` (its nearest existing ancestor). */
export const freeDiskMb = (path: string): Effect.Effect<number, Error> =>
  Effect.tryPromise({
    try: async () => {
      let at = resolve(path)
      for (;;) {
        try {
          const s = await statfs(at)
          return mb(s.bavail * s.bsize)
        } catch (e) {
          const parent = dirname(at)
          const code = (e as NodeJS.ErrnoException).code
          if ((code !== "ENOENT" && code !== "ENOTDIR") || parent === at) throw e
          at = parent
        }
      }
    },
    catch: (e) => new Error(`cannot read the free disk space of ${path}: ${e instanceof Error ? e.message : String(e)}`)
  })

/** ok, degraded at `share` of the limit, down past it (for memory: more is worse). */
const against = (usedMb: number, limitMb: number | undefined, share: number): Status =>
  limitMb === undefined ? "ok" : usedMb > limitMb ? "down" : usedMb > limitMb * share ? "degraded" : "ok"

const diskStatus = (freeMb: number, minMb: number): Status =>
  freeMb < minMb ? "down" : freeMb < minMb * 2 ? "degraded" : "ok"

const worst = (statuses: ReadonlyArray<Status>): Status =>
  statuses.includes("down") ? "down" : statuses.includes("degraded") ? "degraded" : "ok"

/** The `process` component over `dataDir` and `limits`. */
export const processComponent = (dataDir: string, limits: Limits): Component => ({
  name: "process",
  critical: false,
  check: Effect.gen(function* () {
    const memory = process.memoryUsage()
    const heapLimitMb = limits.maxHeapMb ?? mb(getHeapStatistics().heap_size_limit)
    const heapMb = mb(memory.heapUsed)
    const rssMb = mb(memory.rss)
    const freeMb = yield* freeDiskMb(dataDir)
    const share = defaults.memoryDegradedShare
    const parts = {
      heap: against(heapMb, heapLimitMb, share),
      rss: against(rssMb, limits.maxRssMb, share),
      disk: diskStatus(freeMb, limits.minFreeDiskMb)
    }
    const bad = Object.entries(parts).filter(([, s]) => s !== "ok")
    const reason =
      bad.length === 0
        ? undefined
        : bad
            .map(([part, s]) =>
              part === "disk"
                ? `disk ${s}: ${freeMb} MB free in ${dataDir} (minimum ${limits.minFreeDiskMb} MB)`
                : part === "heap"
                  ? `heap ${s}: ${heapMb} of ${heapLimitMb} MB`
                  : `rss ${s}: ${rssMb} of ${limits.maxRssMb} MB`
            )
            .join("; ")
    return {
      status: worst(Object.values(parts)),
      detail: {
        heapUsedMb: heapMb,
        heapLimitMb,
        rssMb,
        ...(limits.maxRssMb === undefined ? {} : { rssLimitMb: limits.maxRssMb }),
        freeDiskMb: freeMb,
        minFreeDiskMb: limits.minFreeDiskMb,
        dataDir,
        ...(reason ? { reason } : {})
      }
    } satisfies Result
  })
})
