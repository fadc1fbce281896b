/** OllamaClient against a scripted loopback server: what goes on the wire, decoding, streaming chunk by chunk. */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, ConfigProvider, Duration, Effect, Either, Stream } from "effect"
import type { ChatRequest } from "../../src/Domain/Chat.js"
import { config } from "../../src/Ollama/OllamaClient.js"
import * as Wire from "../../src/Ollama/Wire.js"
import { chatChunk, clientFor, fakeServer, gate, generateChunk, json, line, ndjsonHead } from "./FakeServer.js"

const tags = {
  models: [
    {
      name: "m:latest",
      model: "m:latest",
      modified_at: "2025-01-01T00:00:00Z",
      size: 1,
      digest: "abc",
      details: { format: "gguf", family: "llama", brand_new: 1 }
    }
  ]
}

describe("OllamaClient", () => {
  it.scopedLive("chat sends the request as-is with stream:false and keeps unknown response fields", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((_req, res) =>
        json(res, 200, {
          ...chatChunk("hello", true),
          future_field: { a: 1 },
          message: { role: "assistant", content: "hello", mood: "ok" }
        })
      )
      const client = yield* clientFor(server.url)
      const request = { model: "m", messages: [{ role: "user", content: "hi" }], unknown_knob: [1, 2] }
      const response = yield* client.chat(request as ChatRequest)
      assert.strictEqual(response.message.content, "hello")
      assert.deepStrictEqual((response as unknown as { future_field: unknown }).future_field, { a: 1 })
      assert.strictEqual((response.message as unknown as { mood: string }).mood, "ok")
      const sent = server.requests[0]!
      assert.strictEqual(sent.method, "POST")
      assert.strictEqual(sent.url, "/api/chat")
      assert.strictEqual(sent.headers["content-type"], "application/json")
      assert.deepStrictEqual(JSON.parse(sent.body), { ...request, stream: false })
    })
  )

  it.scopedLive("notes an answer's text and length on the wire for the value it decoded (forwarded, sized by it)", () =>
    Effect.gen(function* () {
      // spaced out and multi-byte: written again as JSON it would be shorter, and its UTF-16 length differs
      const body = JSON.stringify(chatChunk("héllo wörld", true), null, 2)
      const server = yield* fakeServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(body)
      })
      const client = yield* clientFor(server.url)
      const response = yield* client.chat({ model: "m", messages: [{ role: "user", content: "hi" }] })
      assert.strictEqual(Wire.textOf(response), body)
      assert.strictEqual(Wire.bytesOf(response), Buffer.byteLength(body, "utf8"))
      assert.isBelow(Buffer.byteLength(JSON.stringify(response), "utf8"), Buffer.byteLength(body, "utf8"))
    })
  )

  it.scopedLive("reaches a backend by host name (its pool resolves through the DNS cache) as by IP", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((_req, res) => json(res, 200, chatChunk("named", true)))
      for (const url of [server.url, server.url.replace("127.0.0.1", "localhost")]) {
        const client = yield* clientFor(url)
        const response = yield* client.chat({ model: "m", messages: [{ role: "user", content: "hi" }] })
        assert.strictEqual(response.message.content, "named")
      }
      assert.strictEqual(server.requests.length, 2)
    })
  )

  it.scopedLive("every endpoint uses its method, path and body", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((req, res, body) => {
        const answers: Record<string, () => void> = {
          "GET /": () => res.end("Ollama is running"),
          "GET /api/version": () => json(res, 200, { version: "0.12.6" }),
          "GET /api/tags": () => json(res, 200, tags),
          "GET /api/ps": () => json(res, 200, { models: [] }),
          "POST /api/show": () => json(res, 200, { modelfile: "FROM m", capabilities: ["completion"] }),
          "POST /api/generate": () => json(res, 200, generateChunk("text", true)),
          "POST /api/embed": () => json(res, 200, { model: "e", embeddings: [[0.6, 0.8]] }),
          "POST /api/embeddings": () => json(res, 200, { embedding: [1, 2] }),
          "POST /api/copy": () => res.end(),
          "DELETE /api/delete": () => res.end(body === "" ? "no body" : "")
        }
        const answer = answers[`${req.method} ${req.url}`]
        return answer === undefined ? json(res, 418, { error: "unexpected" }) : answer()
      })
      const client = yield* clientFor(server.url)
      yield* client.heartbeat
      assert.strictEqual((yield* client.version).version, "0.12.6")
      const list = yield* client.list
      assert.strictEqual((list.models[0]!.details as unknown as { brand_new: number }).brand_new, 1)
      assert.deepStrictEqual((yield* client.ps).models, [])
      assert.deepStrictEqual((yield* client.show({ model: "m" })).capabilities, ["completion"])
      assert.strictEqual((yield* client.generate({ model: "m", prompt: "p" })).response, "text")
      assert.deepStrictEqual((yield* client.embed({ model: "e", input: "x" })).embeddings, [[0.6, 0.8]])
      assert.deepStrictEqual((yield* client.embeddings({ model: "e", prompt: "x" })).embedding, [1, 2])
      yield* client.copy({ source: "a", destination: "b" })
      yield* client.delete({ model: "m" })
      const bodies = server.requests.map((r) => `${r.method} ${r.url} ${r.body}`)
      assert.deepStrictEqual(bodies, [
        "GET / ",
        "GET /api/version ",
        "GET /api/tags ",
        "GET /api/ps ",
        'POST /api/show {"model":"m"}',
        'POST /api/generate {"model":"m","prompt":"p","stream":false}',
        'POST /api/embed {"model":"e","input":"x"}',
        'POST /api/embeddings {"model":"e","prompt":"x"}',
        'POST /api/copy {"source":"a","destination":"b"}',
        'DELETE /api/delete {"model":"m"}'
      ])
      assert.strictEqual(client.backend, server.url)
    })
  )

  it.scopedLive("a stream reaches the consumer chunk by chunk (the server waits for the first one)", () =>
    Effect.gen(function* () {
      const firstSeen = gate()
      const server = yield* fakeServer((_req, res) => {
        ndjsonHead(res)
        res.write(line(chatChunk("a")))
        void firstSeen.promise.then(() => res.end(line(chatChunk("b")) + line(chatChunk("", true))))
      })
      const client = yield* clientFor(server.url)
      const seen: Array<string> = []
      yield* client.chatStream({ model: "m", messages: [{ role: "user", content: "hi" }] }).pipe(
        Stream.runForEach((chunk) =>
          Effect.sync(() => {
            seen.push(chunk.message.content)
            firstSeen.open()
          })
        ),
        Effect.timeoutFail({ duration: Duration.seconds(20), onTimeout: () => "the first chunk was held back" })
      )
      assert.deepStrictEqual(seen, ["a", "b", ""])
      assert.strictEqual(JSON.parse(server.requests[0]!.body).stream, true)
    })
  )

  it.scopedLive("lines split across writes, CRLF, blank lines and split UTF-8 decode", () =>
    Effect.gen(function* () {
      const bytes = Buffer.from(line(generateChunk("héllo")) + "\r\n\n" + line(generateChunk("", true)), "utf8")
      const cut = bytes.indexOf(Buffer.from("é")) + 1
      const server = yield* fakeServer((_req, res) => {
        ndjsonHead(res)
        res.write(bytes.subarray(0, cut))
        setTimeout(() => res.write(bytes.subarray(cut, cut + 7)), 20)
        setTimeout(() => res.end(bytes.subarray(cut + 7)), 40)
      })
      const client = yield* clientFor(server.url)
      const chunks = yield* Stream.runCollect(client.generateStream({ model: "m", prompt: "p" }))
      assert.deepStrictEqual(
        Chunk.toReadonlyArray(chunks).map((c) => c.response),
        ["héllo", ""]
      )
      assert.deepStrictEqual(Chunk.unsafeLast(chunks).context, [1, 2])
    })
  )

  it.scopedLive("the load answer (one JSON object, done:true) decodes through the stream path", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((_req, res) =>
        json(res, 200, {
          model: "m",
          created_at: "t",
          message: { role: "assistant", content: "" },
          done: true,
          done_reason: "load"
        })
      )
      const client = yield* clientFor(server.url)
      const chunks = yield* Stream.runCollect(client.chatStream({ model: "m", messages: [] }))
      assert.strictEqual(chunks.length, 1)
      assert.strictEqual(Chunk.unsafeHead(chunks).done_reason, "load")
    })
  )

  it.scopedLive("streams end right after done:true / status:success, even if the body stays open", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((req, res) => {
        ndjsonHead(res)
        if (req.url === "/api/pull") {
          res.write(line({ status: "pulling manifest" }) + line({ status: "pulling x", digest: "sha256:1", total: 9 }))
          res.write(line({ status: "success" }))
        } else {
          res.write(line(chatChunk("a")) + line(chatChunk("", true)))
        }
      })
      const client = yield* clientFor(server.url)
      const progress = yield* Stream.runCollect(client.pull({ model: "m" }))
      assert.deepStrictEqual(
        Chunk.toReadonlyArray(progress).map((p) => p.status),
        ["pulling manifest", "pulling x", "success"]
      )
      assert.strictEqual(Chunk.toReadonlyArray(progress)[1]!.total, 9)
      const chat = yield* Stream.runCollect(client.chatStream({ model: "m", messages: [] }))
      assert.strictEqual(chat.length, 2)
      assert.strictEqual(JSON.parse(server.requests[0]!.body).stream, true)
    })
  )

  it.scopedLive("push and create stream progress; user:pw@ and headers become request headers", () =>
    Effect.gen(function* () {
      const server = yield* fakeServer((_req, res) => {
        ndjsonHead(res)
        res.end(line({ status: "writing manifest" }) + line({ status: "success" }))
      })
      const host = server.url.replace("http://", "http://al:pw@")
      const client = yield* clientFor(host, { headers: { "x-extra": "1" } })
      assert.strictEqual(client.backend, server.url)
      assert.strictEqual((yield* Stream.runCollect(client.push({ model: "ns/m" }))).length, 2)
      assert.strictEqual((yield* Stream.runCollect(client.create({ model: "m", from: "x" }))).length, 2)
      assert.deepStrictEqual(
        server.requests.map((r) => [r.url, r.headers.authorization, r.headers["x-extra"]]),
        [
          ["/api/push", `Basic ${Buffer.from("al:pw").toString("base64")}`, "1"],
          ["/api/create", `Basic ${Buffer.from("al:pw").toString("base64")}`, "1"]
        ]
      )
    })
  )

  it.effect("config reads OLLAMA_HOST and SLUICE_OLLAMA_* with defaults, and rejects a bad host", () =>
    Effect.gen(function* () {
      const env = (entries: Record<string, string>) =>
        Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map(Object.entries(entries))))
      const defaults = yield* env({})
      assert.strictEqual(defaults.host, "http://127.0.0.1:11434")
      assert.strictEqual(defaults.connections, 32)
      assert.strictEqual(Duration.toMillis(Duration.decode(defaults.headersTimeout!)), 15 * 60_000)
      const set = yield* env({
        OLLAMA_HOST: "example.com:8080",
        SLUICE_OLLAMA_CONNECTIONS: "4",
        SLUICE_OLLAMA_BODY_TIMEOUT: "0 millis",
        SLUICE_OLLAMA_CONNECT_TIMEOUT: "3 seconds"
      })
      assert.strictEqual(set.host, "http://example.com:8080")
      assert.strictEqual(set.connections, 4)
      assert.strictEqual(Duration.toMillis(Duration.decode(set.bodyTimeout!)), 0)
      assert.strictEqual(Duration.toMillis(Duration.decode(set.connectTimeout!)), 3000)
      const bad = yield* Effect.either(env({ OLLAMA_HOST: "ftp://x" }))
      assert.isTrue(Either.isLeft(bad))
    })
  )
})
