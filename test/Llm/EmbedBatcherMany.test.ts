/** Llm.embedMany over the simulator: chunks of the batcher's maximum batch, vectors in order, the cache only on request. */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Llm } from "../../src/Llm/Llm.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import { overSimulator } from "./engine.js"

const texts = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix} ${i}`)

const embedCalls = Effect.map(Simulator, (sim) => sim.stats).pipe(
  Effect.flatten,
  Effect.map((stats) => stats.requests["/api/embed"] ?? 0)
)

/** The `/api/embed` calls `effect` made, with its value. */
const counting = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const before = yield* embedCalls
    const value = yield* effect
    return { value, calls: (yield* embedCalls) - before }
  })

describe("Llm.embedMany", () => {
  layer(overSimulator(fast(), { batching: { maxBatch: 16 } }), { excludeTestServices: true })((it) => {
    it.effect("sends array calls of the maximum batch and answers one vector per text, in order", () =>
      Effect.gen(function* () {
        const llm = yield* Llm
        const inputs = texts(40, "many")
        const { value, calls } = yield* counting(llm.embedMany("all-minilm", inputs))
        assert.strictEqual(calls, 3) // 16 + 16 + 8
        const one = yield* llm.embed({ model: "all-minilm", input: inputs.slice(16, 32) })
        assert.strictEqual(value.length, 40)
        assert.deepStrictEqual(value.slice(16, 32), one.embeddings)
      })
    )

    it.effect('bypasses the response cache by default; `cache: "use"` stores and serves the chunks', () =>
      Effect.gen(function* () {
        const llm = yield* Llm
        const inputs = texts(20, "cached")
        assert.strictEqual((yield* counting(llm.embedMany("all-minilm", inputs))).calls, 2)
        assert.strictEqual((yield* counting(llm.embedMany("all-minilm", inputs))).calls, 2)
        const use = { cache: "use" } as const
        assert.strictEqual((yield* counting(llm.embedMany("all-minilm", inputs, use))).calls, 2)
        const again = yield* counting(llm.embedMany("all-minilm", inputs, use))
        assert.strictEqual(again.calls, 0)
        assert.strictEqual(again.value.length, 20)
      })
    )
  })
})
