/**
 * The drain deadline as a client of the gateway sees it: a unary call still running when the deadline passes is
 * answered 503 `ShuttingDown` with `Retry-After: 5`, in Ollama's error shape on `/api/*` and in OpenAI's envelope on
 * `/v1/*` (Http/Deadline.ts ends the request, DrainMiddleware.ts answers it); once the deadline passed, a new call
 * gets the same answer without reaching the backend.
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schedule } from "effect"
import { ShuttingDown } from "../../src/Domain/LlmError.js"
import * as Shutdown from "../../src/Lifecycle/Shutdown.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { call, layer as gateway } from "./gateway.js"

// 1 s per token: the calls below run far longer than the test
const slow = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 1_000 }))
const messages = [{ role: "user", content: "a long answer" }]

const ollamaBody = { error: new ShuttingDown().message }
const openAiBody = {
  error: { message: new ShuttingDown().message, type: new ShuttingDown().openAi.type, param: null, code: null }
}

layer(gateway(slow), { excludeTestServices: true })("gateway: the drain deadline", (it) => {
  it.effect("unary calls running at the deadline answer 503 ShuttingDown in their API's shape", () =>
    Effect.gen(function* () {
      const sim = yield* Simulator
      const ollama = yield* Effect.fork(
        call("/api/chat", { method: "POST", body: { model: "llama3.2", messages, stream: false } })
      )
      const openAi = yield* Effect.fork(
        call("/v1/chat/completions", { method: "POST", body: { model: "llama3.2", messages } })
      )
      // both calls are on the backend
      yield* sim.stats.pipe(
        Effect.filterOrFail((stats) => (stats.inFlight["llama3.2:latest"] ?? 0) >= 2),
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds")))
      )
      const drain = yield* Shutdown.Drain
      yield* Deferred.succeed(drain.deadline, undefined)
      const [a, b] = [yield* Fiber.join(ollama), yield* Fiber.join(openAi)]
      assert.strictEqual(a.status, 503)
      assert.deepStrictEqual(a.body, ollamaBody)
      assert.strictEqual(a.headers.get("retry-after"), "5")
      assert.strictEqual(b.status, 503)
      assert.deepStrictEqual(b.body, openAiBody)
      assert.strictEqual(b.headers.get("retry-after"), "5")
      // stamped like every other answer
      for (const answer of [a, b]) assert.match(answer.headers.get("x-sluice-request-id") ?? "", /^[0-9a-f]{32}$/)
      // after the deadline a new unary call is answered the same way without reaching the backend
      const before = (yield* sim.stats).requests
      const late = yield* call("/api/generate", {
        method: "POST",
        body: { model: "llama3.2", prompt: "x", stream: false }
      })
      assert.strictEqual(late.status, 503)
      assert.deepStrictEqual(late.body, ollamaBody)
      assert.deepStrictEqual((yield* sim.stats).requests, before)
    })
  )
})
