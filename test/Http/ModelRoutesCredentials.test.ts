/**
 * Model management to a backend configured with `user:pw@`: the forwarded request carries that backend's own
 * `Authorization: Basic`, never the client's. A plain node:http server stands in to record the headers it gets.
 */
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import * as Server from "../../src/Http/Server.js"
import { BackendInfo } from "../../src/Lifecycle/BackendChoice.js"
import * as Engine from "../../src/Llm/Engine.js"
import { gateway } from "./ModelRoutesFixture.js"
import { url } from "./gateway.js"

/** The headers of every /api/copy the recording backend received. */
class Seen extends Context.Tag("test/Seen")<
  Seen,
  { readonly url: string; readonly copies: Array<IncomingHttpHeaders> }
>() {}

const recording = Layer.scoped(
  Seen,
  Effect.acquireRelease(
    Effect.async<{ url: string; copies: Array<IncomingHttpHeaders>; close: () => void }>((resume) => {
      const copies: Array<IncomingHttpHeaders> = []
      const server = createServer((req, res) => {
        req.resume()
        req.on("end", () => {
          if (req.url === "/api/copy") {
            copies.push(req.headers)
            return res.writeHead(200, { "content-length": "0" }).end()
          }
          res.writeHead(200, { "content-type": "application/json" }).end('{"models":[]}')
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as AddressInfo).port
        resume(Effect.succeed({ url: `http://user:s3cret@127.0.0.1:${port}`, copies, close: () => server.close() }))
      })
    }),
    (s) => Effect.sync(s.close)
  )
)

const engine = Layer.unwrapEffect(
  Effect.map(Seen, (seen) =>
    Layer.merge(
      Engine.layer({ backends: [{ url: seen.url }] }),
      Layer.succeed(BackendInfo, { kind: "ollama", urls: [seen.url], requested: [seen.url] })
    )
  )
)

const gatewayLayer = url.pipe(
  Layer.provideMerge(Server.layer({ port: 0, host: "127.0.0.1" })),
  Layer.provide(engine),
  Layer.provideMerge(recording)
)

layer(gatewayLayer, { excludeTestServices: true })("model management with backend credentials", (it) => {
  it.effect("a copy reaches the backend with its user:pw as Basic auth, not the client's Authorization", () =>
    Effect.gen(function* () {
      const seen = yield* Seen
      const answer = yield* gateway("/api/copy", {
        method: "POST",
        body: JSON.stringify({ source: "a", destination: "b" }),
        headers: { authorization: "Bearer not-for-the-backend" }
      })
      assert.strictEqual(answer.status, 200)
      assert.deepStrictEqual(
        seen.copies.map((h) => h.authorization),
        [`Basic ${Buffer.from("user:s3cret").toString("base64")}`]
      )
    })
  )
})
