/**
 * The engine over several backends, a busy backend with Retry-After, and budgets: end to end on loopback.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Budget from "../../src/Llm/Budget.js"
import * as Engine from "../../src/Llm/Engine.js"
import { Llm } from "../../src/Llm/Llm.js"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { chatRequest, quickRetry } from "./engine.js"

const busyBody = JSON.stringify({ error: "server busy, please try again.  maximum pending requests exceeded" })
const chatReply = JSON.stringify({
  model: "m",
  created_at: "2026-01-01T00:00:00Z",
  message: { role: "assistant", content: "ok" },
  done: true,
  done_reason: "stop"
})

/** A server that answers the first chat with 503 + Retry-After: 1, then 200; it records when chats arrived. */
const busyOnce = Effect.acquireRelease(
  Effect.async<{ server: Http.Server; url: string; chats: Array<number> }>((resume) => {
    const chats: Array<number> = []
    const server = Http.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        if (req.url !== "/api/chat") return res.end(JSON.stringify({ models: [] }))
        chats.push(performance.now())
        if (chats.length === 1) {
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
  it.scopedLive("waits out a 503 server busy for its Retry-After, then succeeds", () =>
    Effect.gen(function* () {
      const fake = yield* busyOnce
      const llm = yield* engineOver([fake.url], { retry: { base: "1 millis", jitter: false } })
      const answer = yield* llm.chat({ model: "m", messages: [{ role: "user", content: "hi" }] })
      assert.strictEqual(answer.message.content, "ok")
      assert.strictEqual(fake.chats.length, 2)
      assert.isAtLeast(fake.chats[1]! - fake.chats[0]!, 900)
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
      const kill = Effect.gen(function* () {
        while (done < 30) yield* Effect.sleep("5 millis")
        yield* Scope.close(doomedScope, Exit.void)
      })
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

  it.scopedLive("100 concurrent single-text embeds become ceil(100 / 64) /api/embed calls", () =>
    Effect.gen(function* () {
      const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: fast() })
      const llm = yield* engineOver([sim.url])
      const texts = Array.from({ length: 100 }, (_, i) => `text number ${i}`)
      const vectors = yield* Effect.forEach(texts, (input) => llm.embed({ model: "nomic-embed-text", input }), {
        concurrency: "unbounded"
      })
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
