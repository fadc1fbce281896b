/**
 * Graceful shutdown of `sluice serve` as a child process, in front of a slow simulator: SIGTERM mid-way through
 * 100 concurrent calls (streamed and not).
 */
import { assert, describe, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect } from "effect"
import { join } from "node:path"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { sluice, waitFor } from "./process.js"

const listening = /Listening on (http:\/\/[\w.:[\]]+)/

/** A simulated model that takes about `ms` per call, with room for 100 calls at once. */
const slow = (tokenMs: number) =>
  mapModels(fast({ maxQueue: 1000 }), (m) => ({ ...m, outputTokenMs: tokenMs, numParallel: 100 }))

type Result =
  | { readonly kind: "complete"; readonly status: number }
  | { readonly kind: "clean-error"; readonly status: number; readonly error: string }
  | { readonly kind: "broken" }

/** One call; a complete answer ends with done:true, a clean error is a JSON error body or a final error line. */
const call = (url: string, i: number): Promise<Result> => {
  const stream = i % 2 === 0
  const body = JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: `call ${i}` }], stream })
  return fetch(`${url}/api/chat`, { method: "POST", body })
    .then(async (response): Promise<Result> => {
      const text = (await response.text()).trim()
      const last = JSON.parse(text.slice(text.lastIndexOf("\n") + 1)) as Record<string, unknown>
      if (last.done === true) return { kind: "complete", status: response.status }
      if (typeof last.error === "string") return { kind: "clean-error", status: response.status, error: last.error }
      console.log("no end", i, response.status, text.length, text.slice(-120))
      return { kind: "broken" }
    })
    .catch((e: unknown) => {
      console.log("broken call", i, stream, String(e))
      return { kind: "broken" }
    })
}

/**
 * The chat calls Sluice has accepted so far: those answered (`sluice_http_requests_total` for /api/chat) plus the
 * requests in flight, less this /metrics request itself.
 */
const accepted = async (url: string): Promise<number> => {
  const text = await fetch(`${url}/metrics`).then((r) => r.text())
  const sum = (pattern: RegExp) => [...text.matchAll(pattern)].reduce((total, m) => total + Number(m[1]), 0)
  const answered = sum(/^sluice_http_requests_total\{[^}]*route="\/api\/chat"[^}]*\} (\S+)$/gm)
  const inFlight = sum(/^sluice_http_requests_in_flight(?:\{[^}]*\})? (\S+)$/gm)
  return answered + inFlight - 1
}

/** A run with `drainTimeout` for SLUICE_DRAIN_TIMEOUT, or the shipped default (30 s) when absent. */
const shutdownRun = (tokenMs: number, drainTimeout?: string) =>
  Effect.gen(function* () {
    const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: slow(tokenMs) })
    const run = yield* sluice(["serve", "--port", "0", "--ollama", sim.url], {
      ...(drainTimeout === undefined ? {} : { SLUICE_DRAIN_TIMEOUT: drainTimeout }),
      SLUICE_BACKEND_SLOTS: "100"
    })
    const url = yield* waitFor(run, listening)
    const calls = Array.from({ length: 100 }, (_, i) => call(url, i))
    // Signal only once Sluice has accepted all 100 calls: a call that reaches a draining server is refused with 503
    // by design, and on a loaded machine the last connections can lag the first by seconds. Counted on Sluice's own
    // metrics, not the simulator's requests: a hedged call reaches the simulator twice.
    const inFlightAtSignal = yield* Effect.promise(() =>
      (async () => {
        for (;;) {
          if ((await accepted(url)) >= 100) {
            const stats = await sim.stats.pipe(Effect.runPromise)
            return stats.inFlight["llama3.2:latest"] ?? 0
          }
          await new Promise((r) => setTimeout(r, 10))
        }
      })()
    )
    const signalled = performance.now()
    run.child.kill("SIGTERM")
    // The signal is handled asynchronously: poll readiness until it stops answering 200. It must turn 503 (the
    // listener still open) before connections are refused (0).
    const ready = yield* Effect.promise(async () => {
      for (let i = 0; i < 1000; i++) {
        const status = await fetch(`${url}/health/ready`).then(
          (r) => r.status,
          () => 0
        )
        if (status !== 200) return status
        await new Promise((r) => setTimeout(r, 5))
      }
      return 200
    })
    const results = yield* Effect.promise(() => Promise.all(calls))
    const code = yield* Effect.promise(() => run.exited)
    return {
      ready,
      results,
      code,
      inFlightAtSignal,
      exitedAfterMs: performance.now() - signalled,
      dataDir: run.dataDir
    }
  })

const integrity = (dataDir: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ integrity_check: string }>`PRAGMA integrity_check`).pipe(
    Effect.map((rows) => rows[0]?.integrity_check),
    Effect.provide(SqliteClient.layer({ filename: join(dataDir, "sluice.db") })),
    Effect.orDie
  )

describe("sluice serve: graceful shutdown", () => {
  // With the default drain deadline (30 s). Measured here: at 50 ms per token the calls still running at the signal
  // end within about 10 s of it; at 80 ms (and a 20 s deadline) a loaded CI machine stretched them past the deadline.
  it.scopedLive("SIGTERM drains 100 calls in flight: readiness flips first, every call completes, exit 0", () =>
    Effect.gen(function* () {
      const { ready, results, code, inFlightAtSignal, exitedAfterMs, dataDir } = yield* shutdownRun(50)
      assert.isAbove(inFlightAtSignal, 0, "calls were still running when SIGTERM came")
      assert.strictEqual(ready, 503)
      assert.deepStrictEqual(
        results.filter((r) => r.kind !== "complete"),
        []
      )
      assert.strictEqual(code, 0)
      assert.isBelow(exitedAfterMs, 31_000)
      assert.strictEqual(yield* integrity(dataDir), "ok")
    })
  )

  it.scopedLive("at the drain deadline the calls still running end with a clean error, and the process exits 0", () =>
    Effect.gen(function* () {
      const { results, code, exitedAfterMs } = yield* shutdownRun(1000, "1 second")
      assert.deepStrictEqual(
        results.filter((r) => r.kind === "broken"),
        []
      )
      assert.isAbove(results.filter((r) => r.kind === "clean-error").length, 0)
      assert.strictEqual(code, 0)
      // A correctness bound, not a speed figure: the simulator answers these prompts with 8 to 64 tokens, so at 1 s
      // per token the calls need 8 to 64 s; an exit within 15 s shows the 1 s drain deadline cut them (the slack is
      // for a loaded CI machine, where handling the signal alone has taken seconds)
      assert.isBelow(exitedAfterMs, 15_000)
    })
  )
})
