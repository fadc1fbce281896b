/**
 * Sluice inside your own Effect program: the whole engine (cache, retries, circuit breakers, rate limits,
 * slots, fallbacks, metrics) as one Layer, here over Sluice's built-in Ollama simulator so it runs anywhere.
 * For a real Ollama, replace the simulator with `Engine.layer({ backends: [{ url: "127.0.0.1:11434" }] })`.
 *
 *   node --import tsx examples/embedding/main.ts
 *
 * In an application that installed the package, import from "sluice" instead of "../../src/index.js"
 * (docs/embedding.md: installing with the peer dependencies; test/Package runs a chat like this one from the packed
 * tarball).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, Stream } from "effect"
import { Engine, Llm, Simulator, SimulatorConfig } from "../../src/index.js"

/** A simulated Ollama on a free loopback port (deterministic text and embeddings, near-zero latency). */
const Ollama = Simulator.layer({ port: 0, host: "127.0.0.1", config: SimulatorConfig.fast() })

/** The engine, over whatever URL the simulator got: four calls at once, answers cached for five minutes. */
const SluiceEngine = Layer.unwrapEffect(
  Effect.map(Simulator, (ollama) =>
    Engine.layer({ backends: [{ url: ollama.url, slots: 4 }], cache: { ttl: "5 minutes" } })
  )
).pipe(Layer.provide(Ollama))

const question = { model: "llama3.2", messages: [{ role: "user" as const, content: "Name three rivers." }] }

const program = Effect.gen(function* () {
  const llm = yield* Llm

  const reply = yield* llm.chat(question)
  yield* Console.log(`chat: ${reply.message.content.slice(0, 60)}...`)

  const again = yield* llm.chatServed(question)
  yield* Console.log(`chat again: cache ${again.lookup}, served ${again.served}`)

  const chunks = yield* llm.chatStream({ ...question, stream: true }).pipe(Stream.runCount)
  yield* Console.log(`stream: ${chunks} chunks`)

  const embedded = yield* llm.embed({ model: "nomic-embed-text", input: ["a river", "a mountain"] })
  const dims = embedded.embeddings.map((v) => v.length)
  yield* Console.log(`embed: ${embedded.embeddings.length} vectors of ${dims[0]} dimensions`)

  const failed = yield* llm.chat({ ...question, model: "no-such-model" }).pipe(Effect.flip)
  yield* Console.log(`typed error: ${failed._tag}`)
})

program.pipe(Effect.provide(SluiceEngine), NodeRuntime.runMain)
