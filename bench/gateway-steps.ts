/**
 * Runtime steps and fibers per gateway request: the gateway (Server.layer over Engine.layer) in this process in
 * front of the stub server, one non-streamed call at a time, counted by a Supervisor with op supervision on. A
 * deterministic figure beside the noisy CPU per call of bench/gateway.ts: each Effect step costs, so fewer steps
 * per request is less CPU per request on any machine. Not one of `npm run bench`'s scenarios: run it by hand.
 *
 *   node --import tsx bench/gateway-steps.ts [--path /v1/chat/completions]
 */
import { HttpServer } from "@effect/platform"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { Agent, request } from "node:http"
import * as Server from "../src/Http/Server.js"
import { BackendInfo } from "../src/Lifecycle/BackendChoice.js"
import * as Engine from "../src/Llm/Engine.js"
import { stub } from "./support/Server.js"
import { Counter, supervised } from "./support/Steps.js"

const flag = process.argv.indexOf("--path")
const path = flag === -1 ? "/api/chat" : process.argv[flag + 1]!
const backend = await stub()
const gateway = Server.layer({ port: 0, host: "127.0.0.1" }).pipe(
  Layer.provide(Engine.layer({ backends: [{ url: backend.url, slots: 32, connections: 32 }] })),
  Layer.provide(Layer.succeed(BackendInfo, { kind: "ollama", urls: [backend.url], requested: ["bench"] }))
)
const counter = new Counter()
const scope = Effect.runSync(Scope.make())
// built supervised with op supervision on: the request fibers inherit both from the server's runtime
const context = await Effect.runPromise(Layer.buildWithScope(gateway, scope).pipe(supervised(counter)))
const address = Context.get(context, HttpServer.HttpServer).address
const port = address._tag === "TcpAddress" ? address.port : 0
const agent = new Agent({ keepAlive: true, maxSockets: 1 })
let seq = 0
const call = () =>
  new Promise<void>((resolve, reject) => {
    const body = JSON.stringify({
      model: "llama3.2",
      messages: [{ role: "user", content: `steps ${seq++}` }],
      stream: false
    })
    const req = request({ agent, host: "127.0.0.1", port, path, method: "POST" }, (res) => {
      res.resume()
      res.once("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))))
    })
    req.once("error", reject)
    req.setHeader("content-type", "application/json")
    req.end(body)
  })

for (let i = 0; i < 50; i++) await call()
const n = 50
counter.on = true
for (let i = 0; i < n; i++) await call()
counter.on = false
console.log(`${path}: ${Math.round(counter.steps / n)} steps, ${(counter.fibers / n).toFixed(1)} fibers per request`)
console.log(`  by op: ${counter.perCall(n)}`)
await Effect.runPromise(Scope.close(scope, Exit.void))
agent.destroy()
await backend.stop()
