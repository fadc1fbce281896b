/**
 * The attempt deadline the engine hands down to the pooled client's unary exchanges (Ollama/Deadline.ts): on the
 * live clock the exchange enforces it with its own timer (no watcher fiber), aborts the request upstream and fails
 * with the deadline's error; a client that does not enforce deadlines is still watched (Llm/Watch.ts).
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer } from "effect"
import * as Timeouts from "../../src/Llm/Timeouts.js"
import * as Deadline from "../../src/Ollama/Deadline.js"
import * as OllamaClient from "../../src/Ollama/OllamaClient.js"
import { chatChunk, clientFor, fakeServer, gate, json } from "./FakeServer.js"

const where = { attempt: { backend: "b", method: "chat" }, deadline: { backend: "engine", method: "chat" } }
const hi = { model: "m", messages: [{ role: "user" as const, content: "hi" }] }

/** A server that answers `/api/chat` at once unless the prompt says "stall"; records when a stalled request closes. */
const server = Effect.gen(function* () {
  const closed = gate()
  const fake = yield* fakeServer((req, res, body) => {
    if (body.includes("stall")) {
      res.on("close", () => closed.open())
      return
    }
    json(res, 200, chatChunk("ok", true))
  })
  return { fake, closed }
})

const stall = { ...hi, messages: [{ role: "user" as const, content: "stall" }] }

describe("Deadline", () => {
  it.scopedLive("the pooled client enforces it: the request is aborted upstream and the attempt fails", () =>
    Effect.gen(function* () {
      const { fake, closed } = yield* server
      const client = yield* clientFor(fake.url)
      assert.isTrue(Deadline.enforces(client))
      const attempt = (req: typeof hi, enforced: boolean) =>
        Timeouts.attemptWithin(where, { attempt: "150 millis" }, Infinity, enforced)(client.chat(req))
      const error = yield* Effect.flip(attempt(stall, true))
      assert.deepInclude(error, { _tag: "TimeoutError", phase: "attempt", timeoutMs: 150, backend: "b" })
      yield* closed.wait
      // an answer in time is the answer, and the timer is gone with it (a later call on the fiber is not bounded)
      assert.strictEqual((yield* attempt(hi, true)).message.content, "ok")
      const later = yield* Effect.fork(client.chat(stall))
      yield* Effect.sleep("300 millis")
      assert.isNull(later.unsafePoll(), "no deadline left over for the next exchange")
      yield* Fiber.interrupt(later)
    })
  )

  it.scopedLive("the deadline of the whole call bounds the attempt when it comes first, with its own phase", () =>
    Effect.gen(function* () {
      const { fake } = yield* server
      const client = yield* clientFor(fake.url)
      const until = Date.now() + 100
      const error = yield* Effect.flip(
        Timeouts.attemptWithin(where, { attempt: "1 minute", deadline: "100 millis" }, until, true)(client.chat(stall))
      )
      assert.deepInclude(error, { _tag: "TimeoutError", phase: "deadline", backend: "engine" })
    })
  )

  it.scopedLive("interrupting the caller aborts the request and clears the timer", () =>
    Effect.gen(function* () {
      const { fake, closed } = yield* server
      const client = yield* clientFor(fake.url)
      const fiber = yield* Effect.fork(
        Timeouts.attemptWithin(where, { attempt: "1 minute" }, Infinity, true)(client.chat(stall))
      )
      while (fake.requests.length === 0) yield* Effect.sleep("5 millis")
      assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(fiber)))
      yield* closed.wait
    })
  )

  it.scopedLive("a client that does not enforce deadlines is watched instead, with the same error", () =>
    Effect.gen(function* () {
      const { fake, closed } = yield* server
      // over an HttpClient whose pool lives as long as the test's scope
      const http = yield* Layer.build(NodeHttpClient.layerUndici)
      const client = yield* OllamaClient.make({ host: fake.url }).pipe(Effect.provide(http))
      assert.isFalse(Deadline.enforces(client))
      const error = yield* Effect.flip(
        Timeouts.attemptWithin(
          where,
          { attempt: "150 millis" },
          Infinity,
          Deadline.enforces(client)
        )(client.chat(stall))
      )
      assert.deepInclude(error, { _tag: "TimeoutError", phase: "attempt", timeoutMs: 150 })
      yield* closed.wait
    })
  )
})
