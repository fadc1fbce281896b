/**
 * The engine over several backends, a busy backend with Retry-After, and budgets: end to end on loopback.
 * Each test has its own servers and engine. Where the engine's waits are the point (Retry-After, the batcher's
 * window) the engine runs on the TestClock and the servers on real time (`TestServices.provideLive`); elsewhere a
 * test waits for a condition (`eventually`), never for a fixed time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Metric, Scope, TestClock, TestServices } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Budget from "../../src/Llm/Budget.js"
import * as Engine from "../../src/Llm/Engine.js"
import { Llm } from "../../src/Llm/Llm.js"
import { ResponseCache } from "../../src/Llm/ResponseCache.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { chatRequest, eventually, quickRetry } from "./engine.js"

const busyBody = JSON.stringify({ error: "server busy, please try again.  maximum pending requests exceeded" })
const chatReply = JSON.stringify({
  model: "m",
  created_at: "2026-01-01T00:00:00Z",
  message: { role: "assistant", content: "ok" },
  done: true,
  done_reason: "stop"
})

/** A server that answers the first chat with 503 + Retry-After: 1, then 200; it counts the chats. */
const busyOnce = Effect.acquireRelease(
  Effect.async<{ server: Http.Server; url: string; chats: { count: number } }>((resume) => {
    const chats = { count: 0 }
    const server = Http.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        if (req.url !== "/api/chat") return res.end(JSON.stringify({ models: [] }))
        chats.count++
        if (chats.count === 1) {
          res.writeHead(503, { "content-type": "application/json; charset=utf-8", "retry-after": "1" })
          return res.end(busyBody)
        }
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" })
        res.end(chatReply)
      })
    })
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({ server, chats, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }))
    )
  }),
  ({ server }) => Effect.sync(() => (server.closeAllConnections(), server.close()))
)

const engineOver = (urls: ReadonlyArray<string>, settings: Omit<Engine.Options, "backends"> = {}) =>
  Effect.map(Layer.build(Engine.layer({ ...settings, backends: urls.map((url) => ({ url })) })), Context.get(Llm))

describe("the engine, end to end", () => {
  it.scoped("waits out a 503 server busy for its Retry-After on the Clock, then succeeds", () =>
    Effect.gen(function* () {
      const fake = yield* busyOnce
      // no hedging: its re-check timer (every second) would sit beside the wait under test
      const llm = yield* engineOver([fake.url], { retry: { base: "1 millis", jitter: false }, hedge: { budget: 0 } })
      const requeues = Effect.map(Metric.value(Metrics.requeues), (state) => state.count)
      const before = yield* requeues
      const call = yield* Effect.fork(llm.chat({ model: "m", messages: [{ role: "user", content: "hi" }] }))
      // the 503 came back and the call is re-queued: it waits 1 s of Clock time (the TestClock stands at 0)
      yield* eventually(requeues, (n) => n === before + 1, "the call is re-queued after the 503")
      const nextDue = Effect.map(TestClock.sleeps(), (wakes) => Math.min(...wakes))
      yield* eventually(nextDue, (at) => at === 1000, "the next thing due is the call's Retry-After")
      assert.strictEqual(fake.chats.count, 1)
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(fake.chats.count, 1, "no second chat before the Retry-After")
      yield* TestClock.adjust("1 millis")
      const answer = yield* Fiber.join(call)
      assert.strictEqual(answer.message.content, "ok")
      assert.strictEqual(fake.chats.count, 2)
    })
  )

  it.scopedLive("two backends, one killed mid-run: no call is lost", () =>
    Effect.gen(function* () {
      const config = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 2 }))
      const doomedScope = yield* Scope.make()
      const doomed = yield* Simulator.make({ port: 0, host: "127.0.0.1", config }).pipe(Scope.extend(doomedScope))
      const survivor = yield* Simulator.make({ port: 0, host: "127.0.0.1", config })
      const llm = yield* engineOver([doomed.url, survivor.url], { retry: { ...quickRetry, maxRetries: 5 } })
      let done = 0
      const calls = Effect.forEach(
        Array.from({ length: 120 }, (_, i) => chatRequest(`call ${i}`)),
        (req) => Effect.tap(llm.chat(req), () => Effect.sync(() => done++)),
        { concurrency: 12 }
      )
      const kill = Effect.zipRight(
        eventually(
          Effect.sync(() => done),
          (n) => n >= 30,
          "30 calls done"
        ),
        Scope.close(doomedScope, Exit.void)
      )
      const [answers] = yield* Effect.all([calls, kill], { concurrency: 2 })
      assert.strictEqual(answers.length, 120)
      const doomedServed = (yield* doomed.stats).requests["/api/chat"] ?? 0
      const survivorServed = (yield* survivor.stats).requests["/api/chat"] ?? 0
      assert.isAbove(doomedServed, 0)
      assert.isAbove(survivorServed, 60)
    })
  )

  it.scopedLive("a budget of 3 calls stops the 4th with BudgetExceeded, while cache hits pass", () =>
    Effect.gen(function* () {
      const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: fast() })
      const llm = yield* engineOver([sim.url])
      const tick = Effect.gen(function* () {
        for (let i = 0; i < 3; i++) yield* llm.chat(chatRequest(`budgeted ${i}`))
        const hit = yield* llm.chatServed(chatRequest("budgeted 0"))
        assert.strictEqual(hit.lookup, "hit")
        return yield* Effect.flip(llm.chat(chatRequest("one too many")))
      })
      const error = yield* Budget.scoped("tick", { calls: 3 })(tick)
      assert.strictEqual(error._tag, "BudgetExceeded")
      if (error._tag === "BudgetExceeded") {
        assert.strictEqual(error.limit, "calls")
        assert.strictEqual(error.budget, "tick")
      }
      assert.strictEqual((yield* sim.stats).requests["/api/chat"], 3)
    })
  )

  it.scopedLive("configured slots are never exceeded at the backend, and priorities still all complete", () =>
    Effect.gen(function* () {
      const config = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 2 }))
      const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config })
      const llm = Context.get(yield* Layer.build(Engine.layer({ backends: [{ url: sim.url, slots: 2 }] })), Llm)
      const priorities = ["interactive", "normal", "batch"] as const
      yield* Effect.forEach(
        Array.from({ length: 30 }, (_, i) => i),
        (i) => llm.chat(chatRequest(`slot ${i}`), { priority: priorities[i % 3]! }),
        { concurrency: "unbounded" }
      )
      const stats = yield* sim.stats
      assert.strictEqual(stats.peakConcurrency["llama3.2:latest"], 2)
    })
  )

  it.scoped("100 concurrent single-text embeds become ceil(100 / 64) /api/embed calls", () =>
    Effect.gen(function* () {
      const sim = yield* TestServices.provideLive(Simulator.make({ port: 0, host: "127.0.0.1", config: fast() }))
      const context = yield* Layer.build(Engine.layer({ backends: [{ url: sim.url }] }))
      const llm = Context.get(context, Llm)
      const cache = Context.get(context, ResponseCache)
      const texts = Array.from({ length: 100 }, (_, i) => `text number ${i}`)
      const calls = yield* Effect.forEach(texts, (input) =>
        Effect.fork(llm.embed({ model: "nomic-embed-text", input }))
      )
      // the first 64 go out at once; the other 36 wait for the window, which passes only on the TestClock
      yield* eventually(cache.stats, (s) => s.misses === 100, "every call is past the cache, on its way to the batcher")
      yield* TestClock.adjust("5 millis")
      const vectors = yield* Fiber.joinAll(calls)
      assert.strictEqual((yield* sim.stats).requests["/api/embed"], 2)
      const direct = yield* Effect.promise(() =>
        fetch(`${sim.url}/api/embed`, {
          method: "POST",
          body: JSON.stringify({ model: "nomic-embed-text", input: texts[42] })
        }).then((r) => r.json() as Promise<{ embeddings: Array<Array<number>> }>)
      )
      assert.deepStrictEqual(vectors[42]!.embeddings[0], direct.embeddings[0])
    })
  )
})
