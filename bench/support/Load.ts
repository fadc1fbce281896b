/**
 * Closed-loop load: `concurrency` callers each take the next call index until `count` calls are done, timing each
 * with `performance.now()`. One version for Promise clients and one for Effect clients (fibers, not promises, so
 * the Effect path pays no Promise bridge per call). Failures are counted, not thrown.
 */
import { Effect } from "effect"
import { performance } from "node:perf_hooks"

export interface Outcome {
  /** Latencies (ms) of the successful calls. */
  readonly latencies: Array<number>
  readonly failures: Map<string, number>
  readonly elapsedMs: number
  /** Client-process CPU (user + system) during the run, in ms. */
  readonly cpuMs: number
}

const label = (e: unknown): string =>
  typeof e === "object" && e !== null && "_tag" in e
    ? String((e as { _tag: unknown })._tag)
    : e instanceof Error
      ? e.name === "Error"
        ? e.message.slice(0, 60)
        : e.name.replace("(FiberFailure) ", "")
      : String(e).slice(0, 60)

const count = (failures: Map<string, number>, e: unknown) => {
  const key = label(e)
  failures.set(key, (failures.get(key) ?? 0) + 1)
}

const cpuMs = (since: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(since)
  return (d.user + d.system) / 1000
}

export const runPromises = async (
  total: number,
  concurrency: number,
  call: (i: number) => Promise<unknown>
): Promise<Outcome> => {
  const latencies: Array<number> = []
  const failures = new Map<string, number>()
  let next = 0
  const worker = async () => {
    for (let i = next++; i < total; i = next++) {
      const t0 = performance.now()
      try {
        await call(i)
        latencies.push(performance.now() - t0)
      } catch (e) {
        count(failures, e)
      }
    }
  }
  const cpu = process.cpuUsage()
  const start = performance.now()
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { latencies, failures, elapsedMs: performance.now() - start, cpuMs: cpuMs(cpu) }
}

export const runEffects = <R>(
  total: number,
  concurrency: number,
  call: (i: number) => Effect.Effect<unknown, unknown, R>
): Effect.Effect<Outcome, never, R> =>
  Effect.suspend(() => {
    const latencies: Array<number> = []
    const failures = new Map<string, number>()
    let next = 0
    const one = (i: number) =>
      Effect.suspend(() => {
        const t0 = performance.now()
        return Effect.matchCause(call(i), {
          onFailure: (cause) => count(failures, cause._tag === "Fail" ? cause.error : cause),
          onSuccess: () => void latencies.push(performance.now() - t0)
        })
      })
    const worker = Effect.whileLoop({
      while: () => next < total,
      body: () => one(next++),
      step: () => {}
    })
    const cpu = process.cpuUsage()
    const start = performance.now()
    return Effect.all(
      Array.from({ length: concurrency }, () => worker),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.map(() => ({ latencies, failures, elapsedMs: performance.now() - start, cpuMs: cpuMs(cpu) })))
  })

/** Open-loop arrivals: call i starts at `i / rate` seconds whatever happened to earlier calls. */
export const runOpenLoop = async (
  total: number,
  ratePerSecond: number,
  call: (i: number) => Promise<unknown>
): Promise<Outcome> => {
  const latencies: Array<number> = []
  const failures = new Map<string, number>()
  const cpu = process.cpuUsage()
  const start = performance.now()
  const calls: Array<Promise<void>> = []
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / ratePerSecond
    const wait = due - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    const t0 = performance.now()
    calls.push(
      call(i).then(
        () => void latencies.push(performance.now() - t0),
        (e) => count(failures, e)
      )
    )
  }
  await Promise.allSettled(calls)
  return { latencies, failures, elapsedMs: performance.now() - start, cpuMs: cpuMs(cpu) }
}

export const failureText = (failures: Map<string, number>): string =>
  failures.size === 0 ? "none" : [...failures].map(([k, n]) => `${n} ${k}`).join(", ")
