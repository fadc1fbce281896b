/** Per-model settings through Engine.layer: aliases resolve before the cache and routing; cache off; deadline. */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as Engine from "../../src/Llm/Engine.js"
import { Llm } from "../../src/Llm/Llm.js"
import * as ModelTable from "../../src/Llm/ModelTable.js"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"

const ask = (model: string) => ({ model, messages: [{ role: "user" as const, content: "the same question" }] })

const setup = Effect.gen(function* () {
  const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: fast() })
  const engine = Engine.layer({
    backends: [{ url: sim.url }],
    models: { "llama3.2": { aliases: ["fast"] }, qwen3: { cache: false, deadline: "1 minute" } }
  })
  const llm = Context.get(yield* Layer.build(engine), Llm)
  const chats = Effect.map(sim.stats, (s) => s.requests["/api/chat"] ?? 0)
  return { llm, chats }
})

describe("ModelTable", () => {
  it("resolves aliases (normalised) and gives a call's own options precedence over the model's", () => {
    const table = ModelTable.make({ "llama3.2": { aliases: ["Fast"] }, qwen3: { cache: false, deadline: "1 minute" } })
    assert.strictEqual(table.resolve("fast"), "llama3.2:latest")
    assert.strictEqual(table.resolve("fast:latest"), "llama3.2:latest")
    assert.strictEqual(table.resolve("other"), "other")
    assert.deepStrictEqual(table.options("qwen3", undefined), { cache: "bypass", timeout: "1 minute" })
    assert.deepStrictEqual(table.options("qwen3", { cache: "use" }), { cache: "use", timeout: "1 minute" })
    assert.isUndefined(table.options("llama3.2", undefined))
  })

  it.scopedLive("a call by alias is the model's call: one upstream request for both, cached as one", () =>
    Effect.gen(function* () {
      const { llm, chats } = yield* setup
      const byName = yield* llm.chat(ask("llama3.2"))
      const byAlias = yield* llm.chat(ask("fast"))
      assert.strictEqual(byAlias.message.content, byName.message.content)
      assert.strictEqual(yield* chats, 1)
    })
  )

  it.scopedLive("a model with cache: false goes upstream every time", () =>
    Effect.gen(function* () {
      const { llm, chats } = yield* setup
      yield* llm.chat(ask("qwen3"))
      yield* llm.chat(ask("qwen3"))
      assert.strictEqual(yield* chats, 2)
    })
  )
})
