/** Cancellation reaches the server, the pool is bounded, and the pool's sockets close with its scope. */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import type * as Http from "node:http"
import { OllamaClient } from "../../src/Ollama/OllamaClient.js"
import { chatChunk, clientFor, fakeServer, gate, json, line, ndjsonHead } from "./FakeServer.js"

const hi = { model: "m", messages: [{ role: "user", content: "hi" }] }

/** Resolves `closed` with whether the response was finished when the connection closed. */
const watchClose = (res: Http.ServerResponse, closed: { open: (finished: boolean) => void }) =>
  res.on("close", () => closed.open(res.writableFinished))

describe("OllamaClient lifecycle", () => {
  it.scopedLive("taking one chunk of chatStream closes the request's socket before the server finishes", () =>
    Effect.gen(function* () {
      const closed = gate<boolean>()
      const server = yield* fakeServer((_req, res) => {
        watchClose(res, closed)
        ndjsonHead(res)
        res.write(line(chatChunk("a")))
        // never finishes on its own: only the client going away ends this response
      })
      const client = yield* clientFor(server.url)
      const first = yield* Stream.runCollect(Stream.take(client.chatStream(hi), 1))
      assert.strictEqual(first.length, 1)
      assert.isFalse(yield* closed.wait, "the socket closed before the response was finished")
    })
  )

  it.scopedLive("interrupting a fiber running chat aborts the request", () =>
    Effect.gen(function* () {
      const arrived = gate()
      const closed = gate<boolean>()
      const server = yield* fakeServer((_req, res) => {
        watchClose(res, closed)
        arrived.open()
      })
      const client = yield* clientFor(server.url)
      const fiber = yield* Effect.fork(client.chat(hi))
      yield* arrived.wait
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.isFalse(yield* closed.wait)
    })
  )

  it.scopedLive("interrupting a stream mid-body aborts the request", () =>
    Effect.gen(function* () {
      const firstSent = gate()
      const closed = gate<boolean>()
      const server = yield* fakeServer((_req, res) => {
        watchClose(res, closed)
        ndjsonHead(res)
        res.write(line(chatChunk("a")))
      })
      const client = yield* clientFor(server.url)
      const fiber = yield* client.chatStream(hi).pipe(
        Stream.runForEach(() => Effect.sync(() => firstSent.open())),
        Effect.fork
      )
      yield* firstSent.wait
      yield* Fiber.interrupt(fiber)
      assert.isFalse(yield* closed.wait)
    })
  )

  it.scopedLive("with connections: 2, ten concurrent calls never hold more than 2 sockets", () =>
    Effect.gen(function* () {
      let inFlight = 0
      let maxInFlight = 0
      const server = yield* fakeServer((_req, res) => {
        inFlight += 1
        maxInFlight = Math.max(maxInFlight, inFlight)
        setTimeout(() => {
          inFlight -= 1
          json(res, 200, chatChunk("ok", true))
        }, 30)
      })
      const client = yield* clientFor(server.url, { connections: 2 })
      const answers = yield* Effect.all(
        Array.from({ length: 10 }, () => client.chat(hi)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(answers.length, 10)
      assert.strictEqual(server.requests.length, 10)
      assert.isAtMost(server.sockets.maxOpen, 2)
      assert.isAtMost(maxInFlight, 2)
      assert.isAtLeast(server.sockets.maxOpen, 1)
    })
  )

  it.scopedLive("sockets are reused (keep-alive) and closed when the layer's scope closes", () =>
    Effect.gen(function* () {
      const allClosed = gate()
      const server = yield* fakeServer((req, res) => {
        req.socket.once("close", () => allClosed.open())
        json(res, 200, { version: "1" })
      })
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(OllamaClient.layer({ host: server.url, connections: 1 }), scope)
      const client = Context.get(context, OllamaClient)
      for (let i = 0; i < 5; i++) yield* client.version
      assert.strictEqual(server.sockets.total, 1)
      assert.strictEqual(server.sockets.open, 1)
      yield* Scope.close(scope, Exit.void)
      yield* allClosed.wait
      assert.strictEqual(server.sockets.open, 0)
    })
  )

  it.scopedLive("a stream whose body ends a little after done:true keeps its socket in the pool", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((_req, res) => {
        ndjsonHead(res)
        res.write(line(chatChunk("a")))
        res.write(line(chatChunk("", true)))
        // Ollama flushes the done line and finishes the chunked body in a later write.
        setTimeout(() => res.end(), 5)
      })
      const client = yield* clientFor(server.url, { connections: 1 })
      for (let i = 0; i < 10; i++) {
        const chunks = yield* Stream.runCollect(client.chatStream(hi))
        assert.strictEqual(chunks.length, 2)
      }
      assert.strictEqual(server.sockets.total, 1)
    })
  )
})
