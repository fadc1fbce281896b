/**
 * VectorMemory with two instances over one database (scale-out, or an episode taken over from a dead instance):
 * a namespace the other instance pinned after this one started is read from the table on first use, so writing
 * in it is no conflict and recall finds what the other wrote. Deterministic Embedder, in-memory SQLite.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { VectorMemory } from "../../src/Agent/VectorMemory.js"
import { Embedder } from "../../src/Agent/VectorMemoryEmbedder.js"
import { embedding } from "../../src/Simulator/Embedding.js"
import { MemoriesRepo } from "../../src/Store/MemoriesRepo.js"
import * as Store from "../../src/Store/Store.js"

const fakeEmbedder = Layer.succeed(Embedder, {
  embed: (_model, texts) => Effect.succeed(texts.map((text) => embedding(text, 32)))
})
const shared = MemoriesRepo.Default.pipe(Layer.provideMerge(Layer.merge(Store.layerMemory, fakeEmbedder)))

/** An instance: its own VectorMemory (its own indexes) over the shared database. */
const instance = Effect.map(
  Layer.build(Layer.fresh(VectorMemory.DefaultWithoutDependencies({ model: "fake-32" }))),
  Context.get(VectorMemory)
)

describe("VectorMemory: two instances on one database", () => {
  it.scoped("a namespace pinned by the other instance is read on first use: no conflict, its memories recalled", () =>
    Effect.gen(function* () {
      const [a, b] = [yield* instance, yield* instance]
      yield* a.remember({ agent: "walker", namespace: "walker", text: "the launch moved to friday" })
      yield* b.remember({ agent: "walker", namespace: "walker", text: "the venue is the harbour hall" })
      const recalled = yield* b.recall({ namespace: "walker", query: "when is the launch", k: 2 })
      assert.deepStrictEqual(recalled.map((r) => r.memory.text).sort(), [
        "the launch moved to friday",
        "the venue is the harbour hall"
      ])

      yield* a.remember({ agent: "scout", namespace: "scouting", text: "rain expected on friday" })
      const found = yield* b.recall({ namespace: "scouting", query: "rain on friday", k: 1 })
      assert.deepStrictEqual(
        found.map((r) => r.memory.text),
        ["rain expected on friday"]
      )
      const [stats] = (yield* b.stats).filter((s) => s.namespace === "scouting")
      assert.strictEqual(stats?.memories, 1)
    }).pipe(Effect.provide(shared))
  )
})
