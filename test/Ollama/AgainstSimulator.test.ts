/** The client against the simulator: cancelling a call (streamed or not) frees the simulator's slot. */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { OllamaClient } from "../../src/Ollama/OllamaClient.js"
import { Simulator, type SimulatorStats } from "../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"

const slow = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 100 }))
const client = Layer.unwrapEffect(Effect.map(Simulator, (sim) => OllamaClient.layer({ host: sim.url })))
const both = client.pipe(Layer.provideMerge(Simulator.layerTest(slow)))
const messages = [{ role: "user", content: "tell me a long story" }]

/** Polls the simulator's stats until `done` holds (real time; the simulator is a real server). */
const statsUntil = (done: (stats: SimulatorStats) => boolean) =>
  Effect.flatMap(Simulator, (sim) =>
    sim.stats.pipe(
      Effect.filterOrFail(done),
      Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds")))
    )
  )

describe("OllamaClient against the simulator", () => {
  layer(both, { excludeTestServices: true })((it) => {
    it.effect("taking one chunk and stopping: the simulator sees the disconnect and frees the slot", () =>
      Effect.gen(function* () {
        const ollama = yield* OllamaClient
        const chunks = yield* Stream.runCollect(Stream.take(ollama.chatStream({ model: "llama3.2", messages }), 1))
        assert.strictEqual(chunks.length, 1)
        const stats = yield* statsUntil((s) => s.disconnects >= 1 && s.inFlight["llama3.2:latest"] === 0)
        assert.strictEqual(stats.inFlight["llama3.2:latest"], 0)
      })
    )

    it.effect("interrupting a non-streamed chat frees the slot too", () =>
      Effect.gen(function* () {
        const ollama = yield* OllamaClient
        const sim = yield* Simulator
        const before = (yield* sim.stats).disconnects
        const fiber = yield* Effect.fork(ollama.chat({ model: "llama3.2", messages }))
        yield* statsUntil((s) => s.inFlight["llama3.2:latest"] === 1)
        yield* Fiber.interrupt(fiber)
        const stats = yield* statsUntil((s) => s.disconnects > before && s.inFlight["llama3.2:latest"] === 0)
        assert.isAbove(stats.disconnects, before)
      })
    )
  })
})
