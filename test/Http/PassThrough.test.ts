/**
 * The gateway forwards Ollama's answers as they came (Ollama/Wire.ts): a unary answer's body and a stream's lines
 * reach the client byte for byte (spacing, field order, `null`s and fields Sluice does not know), from a cache hit
 * too, and not written as JSON again.
 */
import { HttpServer } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as Server from "../../src/Http/Server.js"
import { BackendInfo } from "../../src/Lifecycle/BackendChoice.js"
import * as Engine from "../../src/Llm/Engine.js"

// written by hand: key order, spaces and the null are not what JSON.stringify of the decoded value would give
const unary =
  '{ "created_at": "2026-01-01T00:00:00Z", "model": "llama3.2", "message": { "content": "hé", "role": "assistant",' +
  ' "images": null }, "done_reason": "stop", "done": true, "eval_count": 2, "brand_new": [1, 2.50] }'
const lines = [
  '{"model":"llama3.2", "created_at":"2026-01-01T00:00:00Z", "message":{"role":"assistant","content":"a"}, "done":false}',
  '{"model":"llama3.2", "created_at":"2026-01-01T00:00:01Z", "message":{"role":"assistant","content":""},' +
    ' "done":true, "done_reason":"stop", "eval_count":1, "brand_new":null}'
]

const backend = Effect.acquireRelease(
  Effect.async<{ url: string; close: () => void }>((resume) => {
    const server = createServer((req, res) => {
      let body = ""
      req.on("data", (chunk) => (body += chunk))
      req.on("end", () => {
        if (req.url !== "/api/chat") return res.writeHead(404).end()
        if (JSON.parse(body).stream === false)
          return res.writeHead(200, { "content-type": "application/json" }).end(unary)
        res.writeHead(200, { "content-type": "application/x-ndjson" })
        res.end(lines.map((line) => `${line}\n`).join(""))
      })
    })
    server.listen(0, "127.0.0.1", () =>
      resume(
        Effect.succeed({
          url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          close: () => server.close()
        })
      )
    )
  }),
  (b) => Effect.sync(b.close)
)

const chat = (url: string, stream: boolean) =>
  Effect.promise(async () => {
    const response = await fetch(`${url}/api/chat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: "hi" }], stream })
    })
    return { text: await response.text(), cache: response.headers.get("x-sluice-cache") }
  })

describe("gateway pass-through", () => {
  it.scopedLive("forwards unary answers and stream lines as Ollama wrote them, from the cache too", () =>
    Effect.gen(function* () {
      const { url: backendUrl } = yield* backend
      const context = yield* Layer.build(
        Server.layer({ port: 0, host: "127.0.0.1" }).pipe(
          Layer.provide(Engine.layer({ backends: [{ url: backendUrl }] })),
          Layer.provide(Layer.succeed(BackendInfo, { kind: "ollama", urls: [backendUrl], requested: ["test"] }))
        )
      )
      const address = Context.get(context, HttpServer.HttpServer).address
      const url = address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : ""
      const first = yield* chat(url, false)
      assert.deepStrictEqual(first, { text: unary, cache: "miss" })
      const again = yield* chat(url, false)
      assert.deepStrictEqual(again, { text: unary, cache: "hit" })
      const streamed = yield* chat(url, true)
      assert.strictEqual(streamed.text, lines.map((line) => `${line}\n`).join(""))
    })
  )
})
