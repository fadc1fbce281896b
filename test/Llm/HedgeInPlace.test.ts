/**
 * The first attempt of a hedged call runs on the caller's fiber (Llm/HedgeInPlace.ts) when every backend's exchange
 * can be cut: the engine over two real loopback servers on the live clock. The hedge's knobs (`floor`,
 * `coldAfter`) are what is under test here, made small so that a hedge is due within a test; every other setting
 * is the default.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Supervisor } from "effect"
import * as Engine from "../../src/Llm/Engine.js"
import { Llm } from "../../src/Llm/Llm.js"
import { chatChunk, fakeServer, gate, json } from "../Ollama/FakeServer.js"

const hedge = { floor: "100 millis", coldAfter: "100 millis" } as const
const ask = (content: string) => ({ model: "m", messages: [{ role: "user" as const, content }] })

/** A server that stalls on prompts containing "stall" (recording when such a request closes), else answers `name`. */
const server = (name: string) =>
  Effect.gen(function* () {
    const closed = gate()
    const fake = yield* fakeServer((req, res, body) => {
      if (body.includes("stall")) {
        res.on("close", () => closed.open())
        return
      }
      json(res, 200, chatChunk(name, true))
    })
    return { fake, closed }
  })

const engineOver = (urls: ReadonlyArray<string>) =>
  Effect.map(Layer.build(Engine.layer({ hedge, backends: urls.map((url) => ({ url })) })), Context.get(Llm))

describe("hedging with the first attempt in place", () => {
  it.scopedLive("a stalled first attempt: the hedge on the other backend wins and the stalled request is aborted", () =>
    Effect.gen(function* () {
      const a = yield* server("a")
      // b answers even "stall" prompts: it is the healthy backend the hedge goes to
      const b = yield* fakeServer((_req, res) => json(res, 200, chatChunk("b", true)))
      const llm = yield* engineOver([a.fake.url, b.url])
      const answer = yield* llm.chat(ask("stall please"))
      assert.strictEqual(yield* llm.hedges, 1)
      // the first attempt went to a (the first backend with no call in flight), the hedge to b
      assert.strictEqual(answer.message.content, "b")
      yield* a.closed.wait
      // the engine goes on as usual: the next call is answered by the first backend, with no hedge
      assert.strictEqual((yield* llm.chat(ask("hi"))).message.content, "a")
      assert.strictEqual(yield* llm.hedges, 1)
    })
  )

  it.scopedLive("a first attempt that ends before the hedge: the hedge is interrupted and its request aborted", () =>
    Effect.gen(function* () {
      const release = gate()
      const hedgeClosed = gate()
      let calls = 0
      // one backend: the first chat is answered once the hedge (the second chat) has arrived
      const fake = yield* fakeServer((req, res) => {
        if (req.url !== "/api/chat") return json(res, 200, { models: [] })
        calls += 1
        if (calls === 1) {
          void release.promise.then(() => json(res, 200, chatChunk("first", true)))
          return
        }
        res.on("close", () => hedgeClosed.open())
        release.open()
      })
      const llm = yield* engineOver([fake.url])
      const answer = yield* llm.chat(ask("hi"))
      assert.strictEqual(answer.message.content, "first")
      assert.strictEqual(yield* llm.hedges, 1)
      yield* hedgeClosed.wait
    })
  )

  it.scopedLive(
    "a call that needs no hedge forks no fiber: the attempt, its timeout and its hedge check run in place",
    () =>
      Effect.gen(function* () {
        const b = yield* fakeServer((_req, res) => json(res, 200, chatChunk("b", true)))
        const llm = yield* engineOver([b.url])
        const forks = { count: 0 }
        class Counter extends Supervisor.AbstractSupervisor<void> {
          get value() {
            return Effect.void
          }
          override onStart() {
            forks.count += 1
          }
        }
        const answer = yield* Effect.supervised(llm.chat(ask("hi")), new Counter())
        assert.strictEqual(answer.message.content, "b")
        assert.strictEqual(forks.count, 0)
      })
  )
})
