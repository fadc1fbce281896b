/**
 * Runtime steps and fibers per engine call: `llm.chat` (a cache miss, and with the cache bypassed) beside the bare
 * OllamaClient's `chat`, in front of the stub server, one call at a time, counted by a Supervisor with op
 * supervision on. A deterministic figure beside the noisy CPU per call of bench/overhead.ts: each Effect step costs
 * (a closure or two and a trip through the run loop), so fewer steps per call is less CPU per call on any machine.
 * The counts include the few steps of running each call (providing the context). Not one of `npm run bench`'s
 * scenarios: run it by hand.
 *
 *   node --import tsx bench/engine-steps.ts
 */
import { Effect, Exit, Layer, Scope } from "effect"
import * as Engine from "../src/Llm/Engine.js"
import { Llm } from "../src/Llm/Llm.js"
import { OllamaClient } from "../src/Ollama/OllamaClient.js"
import { stub } from "./support/Server.js"
import { Counter, supervised } from "./support/Steps.js"

const backend = await stub()
const counter = new Counter()
const scope = Effect.runSync(Scope.make())
const layer = Layer.merge(
  Engine.layer({ backends: [{ url: backend.url, slots: 32, connections: 32 }] }),
  OllamaClient.layer({ host: backend.url })
)
const context = await Effect.runPromise(Layer.buildWithScope(layer, scope).pipe(supervised(counter)))

let seq = 0
const messages = () => [{ role: "user", content: `steps ${seq++}` }]
const calls: Record<string, () => Effect.Effect<unknown, unknown, Llm | OllamaClient>> = {
  "OllamaClient.chat (bare client)": () =>
    Effect.flatMap(OllamaClient, (client) => client.chat({ model: "llama3.2", messages: messages() })),
  "llm.chat (cache miss)": () => Effect.flatMap(Llm, (llm) => llm.chat({ model: "llama3.2", messages: messages() })),
  "llm.chat (cache bypassed)": () =>
    Effect.flatMap(Llm, (llm) => llm.chat({ model: "llama3.2", messages: messages() }, { cache: "bypass" }))
}

const n = 50
for (const [name, call] of Object.entries(calls)) {
  const run = () => Effect.runPromise(Effect.provide(call(), context).pipe(supervised(counter)))
  for (let i = 0; i < 50; i++) await run()
  counter.steps = 0
  counter.fibers = 0
  counter.byOp.clear()
  counter.on = true
  for (let i = 0; i < n; i++) await run()
  counter.on = false
  console.log(`${name}: ${Math.round(counter.steps / n)} steps, ${(counter.fibers / n).toFixed(1)} fibers per call`)
  console.log(`  by op: ${counter.perCall(n)}`)
}
await Effect.runPromise(Scope.close(scope, Exit.void))
await backend.stop()
