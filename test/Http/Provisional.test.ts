/**
 * The provisional answer on a raw Node server: 503 "starting" before an app is attached, the app's answer once it
 * is (the provisional listener gone in the same tick), 503 "shutting down" with Connection: close once it left.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { get, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import * as Guard from "../../src/Http/Guard.js"
import * as Provisional from "../../src/Http/Provisional.js"

interface Answer {
  readonly status: number
  readonly headers: IncomingMessage["headers"]
  readonly body: string
}

const listening = Effect.acquireRelease(
  Effect.async<Server>((resume) => {
    const server = Provisional.untilServed(Guard.createServer())
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

/** One GET on a fresh connection; fails if no answer comes within 1 s (a hang). */
const call = (server: Server) =>
  Effect.async<Answer, Error>((resume) => {
    const { port } = server.address() as AddressInfo
    const request = get({ host: "127.0.0.1", port, path: "/health/ready", agent: false }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () =>
        resume(Effect.succeed({ status: response.statusCode ?? 0, headers: response.headers, body }))
      )
    })
    request.on("error", (e) => resume(Effect.fail(e)))
    return Effect.sync(() => request.destroy())
  }).pipe(Effect.timeoutFail({ duration: "1 second", onTimeout: () => new Error("no answer within 1 s") }))

const app = (_request: IncomingMessage, response: ServerResponse) => {
  response.writeHead(200, { "content-type": "application/json" })
  response.end(JSON.stringify({ status: "ready" }))
}

describe("Provisional.untilServed", () => {
  it.scopedLive("answers 503 until the app is attached, then only the app answers, then 503 once it left", () =>
    Effect.gen(function* () {
      const server = yield* listening

      const starting = yield* call(server)
      assert.strictEqual(starting.status, 503)
      assert.strictEqual(starting.headers["retry-after"], "1")
      assert.include(starting.headers["content-type"], "application/json")
      assert.deepStrictEqual(JSON.parse(starting.body), { error: Provisional.startingMessage })

      server.on("request", app)
      assert.strictEqual(server.listenerCount("request"), 1)
      const served = yield* call(server)
      assert.strictEqual(served.status, 200)
      assert.deepStrictEqual(JSON.parse(served.body), { status: "ready" })

      server.off("request", app)
      const stopping = yield* call(server)
      assert.strictEqual(stopping.status, 503)
      assert.strictEqual(stopping.headers["retry-after"], "5")
      assert.strictEqual(stopping.headers.connection, "close")
      assert.deepStrictEqual(JSON.parse(stopping.body), { error: "Sluice is shutting down and takes no new calls" })
    })
  )
})
