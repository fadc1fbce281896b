/**
 * `sluice serve` while it starts: probed from the moment of spawn, every connection the port accepts gets an HTTP
 * answer (200, or 503 with Retry-After while the app is not attached yet), never a hang.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { get } from "node:http"
import { closedPort, sluice, waitFor } from "./process.js"

type Outcome =
  | { readonly kind: "refused" | "reset"; readonly startedMs: number }
  | {
      readonly kind: "answered"
      readonly startedMs: number
      readonly path: string
      readonly status: number
      readonly retryAfter: string | undefined
      readonly body: string
    }
  | { readonly kind: "failed"; readonly startedMs: number; readonly path: string; readonly reason: string }

/** The correctness bound: an accepted connection without an answer by then is hanging. */
const answerWithinMs = 1_000

/** One GET on a fresh connection (no keep-alive agent), classified. */
const attempt = (port: number, path: string) =>
  Effect.async<Outcome>((resume) => {
    const startedMs = performance.now()
    let settled = false
    const done = (outcome: Outcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(Effect.succeed(outcome))
    }
    const request = get({ host: "127.0.0.1", port, path, agent: false }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () =>
        done({
          kind: "answered",
          startedMs,
          path,
          status: response.statusCode ?? 0,
          retryAfter: response.headers["retry-after"],
          body
        })
      )
    })
    const timer = setTimeout(() => {
      done({ kind: "failed", startedMs, path, reason: `no answer within ${answerWithinMs} ms` })
      request.destroy()
    }, answerWithinMs)
    request.on("error", (e: NodeJS.ErrnoException) =>
      done(
        e.code === "ECONNREFUSED"
          ? { kind: "refused", startedMs }
          : e.code === "ECONNRESET"
            ? { kind: "reset", startedMs }
            : { kind: "failed", startedMs, path, reason: e.code ?? e.message }
      )
    )
    return Effect.sync(() => {
      clearTimeout(timer)
      request.destroy()
    })
  })

/**
 * Attempts every `spacingMs`, at most `inFlight` at once (a slow answer does not delay the next attempt, and a
 * server still busy starting is not buried under connections), until `accepted` connections got past the port.
 */
const probe = (port: number, accepted: number, options: { readonly spacingMs: number; readonly inFlight: number }) =>
  Effect.gen(function* () {
    const outcomes: Array<Outcome> = []
    const fibers: Array<Fiber.RuntimeFiber<void>> = []
    const permits = yield* Effect.makeSemaphore(options.inFlight)
    const past = () => outcomes.filter((o) => o.kind === "answered" || o.kind === "failed").length
    for (let i = 0; past() < accepted; i++) {
      const path = i % 2 === 0 ? "/health/ready" : "/"
      yield* permits.take(1)
      const recorded = Effect.map(attempt(port, path), (o) => void outcomes.push(o))
      fibers.push(yield* Effect.fork(Effect.ensuring(recorded, permits.release(1))))
      yield* Effect.sleep(options.spacingMs)
    }
    yield* Fiber.joinAll(fibers)
    return outcomes.sort((a, b) => a.startedMs - b.startedMs)
  })

describe("sluice serve while starting", () => {
  it.scopedLive("answers every accepted connection (503 + Retry-After until the app is attached), none hangs", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const ollama = yield* closedPort
      const run = yield* sluice(["serve", "--port", String(port)], { OLLAMA_HOST: `127.0.0.1:${ollama}` })
      const outcomes = yield* probe(port, 100, { spacingMs: 2, inFlight: 4 }).pipe(
        Effect.raceFirst(
          Effect.flatMap(
            Effect.promise(() => run.exited),
            (code) => Effect.dieMessage(`exited ${code}`)
          )
        )
      )
      yield* waitFor(run, /Listening on/)

      const answered = outcomes.filter((o) => o.kind === "answered")
      const failed = outcomes.filter((o) => o.kind === "failed")
      assert.deepStrictEqual(failed, [], "an accepted connection got no HTTP answer")
      assert.isAtLeast(answered.length, 100)
      // serve does not probe its port before binding it (a probe's instant of listening would reset a connection
      // queued in it): no connection is ever reset
      assert.deepStrictEqual(
        outcomes.filter((o) => o.kind === "reset"),
        [],
        "a connection was reset"
      )

      for (const a of answered) {
        if (a.status === 503) {
          assert.strictEqual(a.retryAfter, "1", `${a.path}: 503 without Retry-After`)
          assert.deepStrictEqual(JSON.parse(a.body), { error: "sluice is starting" })
        } else assert.strictEqual(a.status, 200, `${a.path}: ${a.status} ${a.body}`)
      }
      const starting = answered.filter((a) => a.status === 503)
      assert.isAbove(starting.length, 0, "no request was answered before the app was attached")
      // once the app answers, readiness is 200 (the simulator stands in) and stays so
      const last = answered.slice(-10)
      assert.isTrue(
        last.every((a) => a.status === 200),
        `not ready at the end: ${last.map((a) => a.status).join(" ")}`
      )
      const ready = answered.filter((a) => a.path === "/health/ready" && a.status === 200)
      assert.deepStrictEqual(JSON.parse(ready[0]!.body), { status: "ready" })
    })
  )
})
