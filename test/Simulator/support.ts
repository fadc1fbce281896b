/** Shared helpers for the simulator tests: an ollama-js client on the simulator, promise bridges, NDJSON. */
import { Effect, Schedule } from "effect"
import { Ollama } from "ollama"
import { Simulator } from "../../src/Simulator/Simulator.js"
import type { SimulatorStats } from "../../src/Simulator/Stats.js"

export const client = Effect.map(Simulator, (sim) => new Ollama({ host: sim.url }))
export const url = Effect.map(Simulator, (sim) => sim.url)

export const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

export interface Failure {
  readonly name: string
  readonly message: string
  readonly status_code?: number
  readonly error?: string
}

/** The rejection of `f` (the test fails if it resolves). */
export const failure = <A>(f: () => Promise<A>): Effect.Effect<Failure> =>
  Effect.promise(() =>
    f().then(
      () => {
        throw new Error("expected the call to fail")
      },
      (e: unknown) => e as Failure
    )
  )

export const norm = (v: ReadonlyArray<number>) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))
export const dot = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.reduce((s, x, i) => s + x * b[i]!, 0)
export const isNanos = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n > 0

/** Raw POST with fetch, returning status, content type and body text. */
export const post = (base: string, path: string, body: unknown, method = "POST") =>
  Effect.promise(async () => {
    const response = await fetch(`${base}${path}`, { method, body: JSON.stringify(body) })
    return { status: response.status, type: response.headers.get("content-type"), text: await response.text() }
  })

export const get = (base: string, path: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}${path}`)
    return { status: response.status, type: response.headers.get("content-type"), text: await response.text() }
  })

/** NDJSON text as lines; unparsable lines come back as `undefined`. */
export const lines = (text: string): Array<Record<string, unknown> | undefined> =>
  text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>
      } catch {
        return undefined
      }
    })

/** Polls the stats until `ok` holds (10 s at most), for effects that land asynchronously. */
export const statsWhen = (ok: (s: SimulatorStats) => boolean) =>
  Effect.flatMap(Simulator, (sim) =>
    sim.stats.pipe(
      Effect.filterOrFail(ok),
      Effect.retry(Schedule.spaced("25 millis").pipe(Schedule.upTo("10 seconds"))),
      Effect.orDie
    )
  )
