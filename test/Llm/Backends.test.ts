/** Backend choice: model-aware, health-aware, least outstanding first; used alone through its Layer. */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { Backends } from "../../src/Llm/Backends.js"
import { InvalidRequest, TransportError } from "../../src/Domain/LlmError.js"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { defaultModels, fast } from "../../src/Simulator/SimulatorConfig.js"

const only = (names: ReadonlyArray<string>) => fast({ models: defaultModels.filter((m) => names.includes(m.name)) })

const backendsOver = (urls: ReadonlyArray<string>) =>
  Effect.map(
    Layer.build(Backends.Default({ backends: urls.map((url) => ({ url, breaker: { consecutiveFailures: 2 } })) })),
    Context.get(Backends)
  )

const down = (url: string) => new TransportError({ backend: url, method: "chat", reason: "test" })

describe("Backends", () => {
  it.scopedLive("prefers backends that list the model, then the least loaded, and skips open breakers", () =>
    Effect.gen(function* () {
      const chatOnly = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: only(["llama3.2:latest"]) })
      const both = yield* Simulator.make({
        port: 0,
        host: "127.0.0.1",
        config: only(["llama3.2:latest", "all-minilm:latest"])
      })
      const backends = yield* backendsOver([chatOnly.url, both.url])
      const urls = (model: string) => Effect.map(backends.candidates(model), (list) => list.map((b) => b.url))

      assert.deepStrictEqual(yield* urls("all-minilm"), [both.url, chatOnly.url])
      assert.deepStrictEqual(yield* urls("llama3.2"), [chatOnly.url, both.url])

      const [first] = backends.all
      first!.state.inFlight = 3
      assert.deepStrictEqual(yield* urls("LLAMA3.2:latest"), [both.url, chatOnly.url])
      first!.state.inFlight = 0

      // a client's 4xx never opens a breaker; two transport failures do
      yield* Effect.exit(
        first!.breaker.protect(Effect.fail(new InvalidRequest({ backend: "", method: "", status: 400, body: "" })))
      )
      assert.deepStrictEqual(yield* urls("llama3.2"), [chatOnly.url, both.url])
      for (let i = 0; i < 2; i++) yield* Effect.exit(first!.breaker.protect(Effect.fail(down(chatOnly.url))))
      assert.deepStrictEqual(yield* urls("llama3.2"), [both.url])
    })
  )

  it.scopedLive("a model no backend lists still has candidates (Ollama answers the 404 itself)", () =>
    Effect.gen(function* () {
      const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: fast() })
      const backends = yield* backendsOver([sim.url])
      const list = yield* backends.candidates("pulled-a-second-ago")
      assert.strictEqual(list.length, 1)
    })
  )
})
