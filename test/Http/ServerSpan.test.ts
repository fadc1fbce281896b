/**
 * The gateway's server span without an exporter (Telemetry.startServerSpan, a bare span made by Http/Front.ts): the backend still receives a
 * `traceparent` in the caller's trace, naming a span of the gateway's (not the caller's own), and a fresh trace
 * when the caller sent none. With an exporter, test/Observability/Telemetry.test.ts.
 */
import { HttpServer } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as Server from "../../src/Http/Server.js"
import { BackendInfo } from "../../src/Lifecycle/BackendChoice.js"
import * as Engine from "../../src/Llm/Engine.js"

const answer = JSON.stringify({
  model: "llama3.2",
  created_at: "2026-01-01T00:00:00.000Z",
  message: { role: "assistant", content: "ok" },
  done: true,
  done_reason: "stop"
})

/** A backend answering every /api/chat with `answer`, recording the `traceparent` it was sent. */
const recordingBackend = Effect.acquireRelease(
  Effect.async<{ url: string; seen: Array<string | undefined>; close: () => void }>((resume) => {
    const seen: Array<string | undefined> = []
    const server = createServer((req, res) => {
      if (req.url === "/api/chat") seen.push(req.headers.traceparent as string | undefined)
      req.resume()
      req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(answer))
    })
    server.listen(0, "127.0.0.1", () => {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      resume(Effect.succeed({ url, seen, close: () => server.close() }))
    })
  }),
  (b) => Effect.sync(b.close)
)

const chat = (url: string, headers: Record<string, string>) =>
  Effect.promise(async () => {
    const response = await fetch(`${url}/api/chat`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({
        model: "llama3.2",
        messages: [{ role: "user", content: String(Math.random()) }],
        stream: false
      })
    })
    await response.text()
    return response.status
  })

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
const parentId = "00f067aa0ba902b7"

describe("gateway server span without an exporter", () => {
  it.scopedLive("the backend gets a traceparent in the caller's trace, or in a fresh one", () =>
    Effect.gen(function* () {
      const backend = yield* recordingBackend
      const context = yield* Layer.build(
        Server.layer({ port: 0, host: "127.0.0.1" }).pipe(
          Layer.provide(Engine.layer({ backends: [{ url: backend.url }] })),
          Layer.provide(Layer.succeed(BackendInfo, { kind: "ollama", urls: [backend.url], requested: ["test"] }))
        )
      )
      const address = Context.get(context, HttpServer.HttpServer).address
      const url = address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : ""
      assert.strictEqual(yield* chat(url, { traceparent: `00-${traceId}-${parentId}-01` }), 200)
      assert.strictEqual(yield* chat(url, {}), 200)
      const [traced, fresh] = backend.seen
      const [, tracedTrace, tracedSpan] = traced!.split("-")
      assert.strictEqual(tracedTrace, traceId)
      assert.notStrictEqual(tracedSpan, parentId)
      assert.match(fresh!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
      assert.notStrictEqual(fresh!.split("-")[1], traceId)
    })
  )
})
