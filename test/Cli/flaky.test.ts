/**
 * `sluice serve` with its shipped defaults in front of a flaky backend (a `sluice simulate` process failing 20 % of
 * calls with 500, resetting 5 % and stalling 2 % for two minutes), as a user would run it: 10,000 chat calls from
 * 16 concurrent callers, half of them streamed, all succeed and the breaker never trips. Then the backend goes
 * down: the breaker opens within 20 calls, later calls fail at once without reaching it, and once it is back, a
 * probe closes the breaker and traffic resumes with no restart.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { sluice, waitFor } from "./process.js"

const listening = /Listening on (http:\/\/[\w.:[\]]+)/
const faults = { error500: 0.2, reset: 0.05, stall: 0.02, stallMs: 120_000, seed: 11 }

/** One chat through the gateway; true when it ended with done:true and no error line. */
const chat = async (url: string, i: number, stream: boolean, tag = "flaky"): Promise<boolean> => {
  const body = {
    model: "llama3.2",
    stream,
    messages: [{ role: "user", content: `${tag} ${i}` }],
    options: { num_predict: 2 }
  }
  const response = await fetch(`${url}/api/chat`, { method: "POST", body: JSON.stringify(body) })
  const text = await response.text()
  if (response.status !== 200) return false
  const lines = text
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { done?: boolean; error?: string })
  return lines.every((line) => line.error === undefined) && lines[lines.length - 1]?.done === true
}

/** Sends `total` calls from `callers` concurrent callers; returns how many succeeded. */
const load = async (url: string, total: number, callers: number, tag?: string): Promise<number> => {
  let next = 0
  let ok = 0
  const caller = async () => {
    while (next < total) {
      const i = next++
      if (await chat(url, i, i % 2 === 1, tag).catch(() => false)) ok++
    }
  }
  await Promise.all(Array.from({ length: callers }, caller))
  return ok
}

const metric = async (url: string, name: string): Promise<number> => {
  const text = await fetch(`${url}/metrics`).then((r) => r.text())
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
  return Number(line?.split(" ").pop() ?? NaN)
}

const simStats = (sim: string) =>
  fetch(`${sim}/_sim/stats`).then(
    (r) => r.json() as Promise<{ requests: Record<string, number>; faults: Record<string, number> }>
  )

const setFaults = (sim: string, patch: Record<string, number>) =>
  fetch(`${sim}/_sim/faults`, { method: "PUT", body: JSON.stringify(patch) }).then((r) =>
    assert.strictEqual(r.status, 200)
  )

describe("sluice serve with its defaults in front of a flaky backend", () => {
  it.scopedLive(
    "10,000 calls (half streamed) all succeed with no breaker trip; a dead backend then fails fast, and recovers",
    () =>
      Effect.gen(function* () {
        const simRun = yield* sluice([
          "simulate",
          "--port",
          "0",
          "--parallel",
          "16",
          "--faults",
          JSON.stringify(faults)
        ])
        const sim = yield* waitFor(simRun, /simulator on (http:\/\/[\w.:]+)/)
        const run = yield* sluice(["serve", "--port", "0", "--ollama", sim])
        const url = yield* waitFor(run, listening)

        const ok = yield* Effect.promise(() => load(url, 10_000, 16))
        assert.strictEqual(ok, 10_000)
        const stats = yield* Effect.promise(() => simStats(sim))
        assert.isAbove(stats.faults.error500!, 1500)
        assert.isAbove(stats.faults.reset!, 300)
        assert.isAbove(stats.faults.stall!, 100)
        const breakerLog = () =>
          run
            .stdout()
            .split("\n")
            .filter((line) => line.includes("circuit breaker"))
            .join("\n")
        assert.strictEqual(yield* Effect.promise(() => metric(url, "sluice_breaker_trips_total")), 0, breakerLog())

        // the backend goes down: calls one after another until the breaker opens, within 20 calls
        yield* Effect.promise(() => setFaults(sim, { error500: 1, reset: 0, stall: 0 }))
        let calls = 0
        while ((yield* Effect.promise(() => metric(url, "sluice_breaker_trips_total"))) === 0 && calls < 25) {
          calls++
          assert.isFalse(yield* Effect.promise(() => chat(url, 100_000 + calls, false)))
        }
        assert.isAtMost(calls, 20)
        const seen = (yield* Effect.promise(() => simStats(sim))).requests["/api/chat"]
        for (let i = 0; i < 10; i++) {
          const response = yield* Effect.promise(() =>
            fetch(`${url}/api/chat`, {
              method: "POST",
              body: JSON.stringify({ model: "llama3.2", stream: false, messages: [{ role: "user", content: `x${i}` }] })
            })
          )
          assert.strictEqual(response.status, 503)
          assert.include(yield* Effect.promise(() => response.text()), "circuit breaker")
        }
        assert.strictEqual((yield* Effect.promise(() => simStats(sim))).requests["/api/chat"], seen)

        // back up: after the open period (5 s) a probe closes the breaker; no restart
        yield* Effect.promise(() => setFaults(sim, { error500: 0 }))
        yield* Effect.sleep("5500 millis")
        assert.strictEqual(yield* Effect.promise(() => load(url, 50, 4, "recovered")), 50)
        assert.strictEqual(yield* Effect.promise(() => metric(url, "sluice_breaker_state")), 0)
      }),
    600_000
  )
})
