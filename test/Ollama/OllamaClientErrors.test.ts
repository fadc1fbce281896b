/** Every error mapping of OllamaClient: statuses, stream failures, decode failures, sockets and timeouts. */
import { HttpClientError, HttpClientRequest } from "@effect/platform"
import * as Undici from "@effect/platform-node/Undici"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { serverBusyMessage } from "../../src/Domain/Common.js"
import type { OllamaError } from "../../src/Domain/LlmError.js"
import { fromHttpClientError, retryAfterMs } from "../../src/Ollama/ErrorMapping.js"
import { chatChunk, clientFor, fakeServer, json, line, ndjsonHead, refusedUrl } from "./FakeServer.js"

const hi = { model: "m", messages: [{ role: "user", content: "hi" }] }

/** The failure of an effect, which must fail. */
const failure = <A>(effect: Effect.Effect<A, OllamaError>) =>
  Effect.flip(effect).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "no failure in time" }))

/** The failure of a stream, and how many values came before it. */
const streamFailure = <A>(stream: Stream.Stream<A, OllamaError>) =>
  Effect.gen(function* () {
    let values = 0
    const error = yield* failure(Stream.runForEach(stream, () => Effect.sync(() => (values += 1))))
    return { error, values }
  })

describe("OllamaClient errors", () => {
  it.scopedLive("404 -> ModelNotFound with the model and the error text (JSON or plain)", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((req, res) =>
        req.url === "/api/chat"
          ? json(res, 404, { error: "model 'm' not found" })
          : res.writeHead(404).end("404 page not found")
      )
      const client = yield* clientFor(server.url)
      const error = yield* failure(client.chat(hi))
      assert.strictEqual(error._tag, "ModelNotFound")
      if (error._tag !== "ModelNotFound") return
      assert.deepStrictEqual(
        [error.model, error.body, error.method, error.backend],
        ["m", "model 'm' not found", "chat", server.url]
      )
      const plain = yield* failure(client.show({ name: "x" }))
      assert.deepInclude(plain, { _tag: "ModelNotFound", model: "x", body: "404 page not found" })
      const streamed = yield* streamFailure(client.chatStream(hi))
      assert.deepInclude(streamed.error, { _tag: "ModelNotFound", method: "chatStream" })
    })
  )

  it.scopedLive("503 -> ServerBusy with Retry-After in ms (seconds or HTTP date)", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((req, res) =>
        json(res, 503, { error: serverBusyMessage }, req.url === "/api/chat" ? { "retry-after": "7" } : {})
      )
      const client = yield* clientFor(server.url)
      assert.deepInclude(yield* failure(client.chat(hi)), {
        _tag: "ServerBusy",
        body: serverBusyMessage,
        retryAfterMs: 7000
      })
      const none = yield* failure(client.embed({ model: "e", input: "x" }))
      assert.strictEqual(none._tag, "ServerBusy")
      assert.isFalse("retryAfterMs" in none && none.retryAfterMs !== undefined)
      assert.strictEqual(
        retryAfterMs("Wed, 21 Oct 2015 07:28:30 GMT", Date.parse("Wed, 21 Oct 2015 07:28:00 GMT")),
        30_000
      )
      assert.strictEqual(retryAfterMs("soon", 0), undefined)
    })
  )

  it.scopedLive("other 4xx -> InvalidRequest, 5xx -> HttpStatusError, with status and body", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((req, res) => {
        if (req.url === "/api/generate") return json(res, 400, { error: "raw mode does not support template" })
        if (req.url === "/api/tags") return res.writeHead(403).end()
        return json(res, 500, { error: "timed out waiting for llama runner to start" })
      })
      const client = yield* clientFor(server.url)
      assert.deepInclude(yield* failure(client.generate({ model: "m", raw: true })), {
        _tag: "InvalidRequest",
        status: 400,
        body: "raw mode does not support template"
      })
      assert.deepInclude(yield* failure(client.list), { _tag: "InvalidRequest", status: 403, body: "HTTP 403" })
      assert.deepInclude(yield* failure(client.chat(hi)), {
        _tag: "HttpStatusError",
        status: 500,
        body: "timed out waiting for llama runner to start"
      })
    })
  )

  it.scopedLive("a mid-stream error line -> StreamError with the chunks before it", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((_req, res) => {
        ndjsonHead(res)
        res.end(line(chatChunk("a")) + line(chatChunk("b")) + line({ error: "out of memory" }))
      })
      const client = yield* clientFor(server.url)
      const { error, values } = yield* streamFailure(client.chatStream(hi))
      assert.deepInclude(error, { _tag: "StreamError", body: "out of memory", chunks: 2, method: "chatStream" })
      assert.strictEqual(values, 2)
    })
  )

  it.scopedLive("a stream without done:true -> StreamIncomplete; a malformed or undecodable line -> DecodeError", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((req, res) => {
        ndjsonHead(res)
        if (req.url === "/api/chat") return res.end(line(chatChunk("a")) + line(chatChunk("b")))
        if (req.url === "/api/generate") return res.end(line({ model: "m" }).replace("}", ""))
        res.end(line({ status: 5 }))
      })
      const client = yield* clientFor(server.url)
      const incomplete = yield* streamFailure(client.chatStream(hi))
      assert.deepInclude(incomplete.error, { _tag: "StreamIncomplete", chunks: 2 })
      assert.strictEqual(incomplete.values, 2)
      const malformed = yield* streamFailure(client.generateStream({ model: "m" }))
      assert.strictEqual(malformed.error._tag, "DecodeError")
      const wrongShape = yield* streamFailure(client.pull({ model: "m" }))
      assert.strictEqual(wrongShape.error._tag, "DecodeError")
    })
  )

  it.scopedLive("a 200 body that is not JSON, or not the schema -> DecodeError", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((req, res) =>
        req.url === "/api/version"
          ? res.end("<html>proxy</html>")
          : req.url === "/api/embed"
            ? json(res, 200, {
                model: "m",
                embeddings: [
                  [0.1, 0.2],
                  [0.3, "0.4"]
                ]
              })
            : json(res, 200, { models: "nope" })
      )
      const client = yield* clientFor(server.url)
      const notJson = yield* failure(client.version)
      assert.strictEqual(notJson._tag, "DecodeError")
      assert.include(notJson.message, "not JSON")
      assert.strictEqual((yield* failure(client.list))._tag, "DecodeError")
      const badVector = yield* failure(client.embed({ model: "m", input: ["a", "b"] }))
      assert.strictEqual(badVector._tag, "DecodeError", "a vector with a string in it is not an embedding")
    })
  )

  it.scopedLive("a socket destroyed before or during the response, or a refused port -> TransportError", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((req, res) => {
        if (req.url === "/api/chat" && req.headers["x-mode"] === "stream") {
          ndjsonHead(res)
          res.write(line(chatChunk("a")))
          return setTimeout(() => res.socket?.destroy(), 20)
        }
        if (req.url === "/api/chat") {
          res.writeHead(200, { "content-type": "application/json", "content-length": "500" })
          res.write('{"model":')
          return setTimeout(() => res.socket?.destroy(), 20)
        }
        res.socket?.destroy()
      })
      const streaming = yield* clientFor(server.url, { headers: { "x-mode": "stream" } })
      const midStream = yield* streamFailure(streaming.chatStream(hi))
      assert.strictEqual(midStream.error._tag, "TransportError")
      assert.strictEqual(midStream.values, 1)
      const client = yield* clientFor(server.url)
      assert.strictEqual((yield* failure(client.chat(hi)))._tag, "TransportError")
      assert.strictEqual((yield* failure(client.version))._tag, "TransportError")
      const refused = yield* failure((yield* clientFor(yield* refusedUrl)).version)
      assert.strictEqual(refused._tag, "TransportError")
      assert.include(refused.message, "ECONNREFUSED")
    })
  )

  it.scopedLive("headersTimeout and bodyTimeout -> TimeoutError with the phase and the deadline", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((req, res) => {
        if (req.url === "/api/version") return // never answers
        if (req.url === "/api/chat" && req.headers["x-mode"] === "stream") {
          ndjsonHead(res)
          return res.write(line(chatChunk("a"))) // then silence
        }
        res.writeHead(200, { "content-type": "application/json" })
        res.write('{"model":"m",') // then silence
      })
      const options = { headersTimeout: "300 millis", bodyTimeout: "300 millis" } as const
      const client = yield* clientFor(server.url, options)
      assert.deepInclude(yield* failure(client.version), { _tag: "TimeoutError", phase: "headers", timeoutMs: 300 })
      assert.deepInclude(yield* failure(client.chat(hi)), { _tag: "TimeoutError", phase: "body", timeoutMs: 300 })
      const streaming = yield* clientFor(server.url, { ...options, headers: { "x-mode": "stream" } })
      const stalled = yield* streamFailure(streaming.chatStream(hi))
      assert.deepInclude(stalled.error, { _tag: "TimeoutError", phase: "body", method: "chatStream" })
      assert.strictEqual(stalled.values, 1)
    })
  )

  it("a connect timeout in the cause chain -> TimeoutError connect", () => {
    const ctx = { backend: "http://h:1", method: "chat", model: "m" }
    const cause = new TypeError("fetch failed", { cause: new Undici.errors.ConnectTimeoutError() })
    const error = new HttpClientError.RequestError({ request: HttpClientRequest.get("/"), reason: "Transport", cause })
    assert.deepInclude(fromHttpClientError(ctx, { connectTimeoutMs: 10_000 })(error), {
      _tag: "TimeoutError",
      phase: "connect",
      timeoutMs: 10_000
    })
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })
    const other = new HttpClientError.RequestError({
      request: HttpClientRequest.get("/"),
      reason: "Transport",
      cause: reset
    })
    assert.deepInclude(fromHttpClientError(ctx)(other), { _tag: "TransportError", reason: "read ECONNRESET" })
  })
})
