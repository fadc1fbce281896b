/**
 * Adaptive slots in front of the simulator, on real time: a model with 4 slots and a strict 2-deep queue (so
 * overflow answers 503). Only bounds are asserted, never speed.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Ref, Schedule } from "effect"
import * as Slots from "../../../src/Llm/Scheduler/Slots.js"
import { OllamaClient } from "../../../src/Ollama/OllamaClient.js"
import { Simulator } from "../../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../../src/Simulator/SimulatorConfig.js"

const model = "llama3.2:latest"
const config = mapModels(fast({ strictQueue: true, maxQueue: 2 }), (m) => ({ ...m, numParallel: 4, outputTokenMs: 2 }))
const client = Layer.unwrapEffect(Effect.map(Simulator, (sim) => OllamaClient.layer({ host: sim.url })))
const both = client.pipe(Layer.provideMerge(Simulator.layerTest(config)))

const busyRetry = Schedule.spaced("5 millis").pipe(Schedule.intersect(Schedule.recurs(50)))

describe("Slots against the simulator", () => {
  layer(both, { excludeTestServices: true })((it) => {
    it.effect("200 calls through adaptive slots stay within the backend's room and learn a sane limit", () =>
      Effect.gen(function* () {
        const ollama = yield* OllamaClient
        const sim = yield* Simulator
        const slots = yield* Slots.make({ limit: "adaptive", adaptive: { initial: 1 } })
        const inFlight = yield* Ref.make(0)
        const peak = yield* Ref.make(0)
        const counted = <A, E>(effect: Effect.Effect<A, E>) =>
          Effect.acquireUseRelease(
            Effect.flatMap(
              Ref.updateAndGet(inFlight, (n) => n + 1),
              (n) => Ref.update(peak, (p) => Math.max(p, n))
            ),
            () => effect,
            () => Ref.update(inFlight, (n) => n - 1)
          )
        const call = (i: number) =>
          slots
            .withSlot(
              "normal",
              counted(ollama.chat({ model, messages: [{ role: "user", content: `request ${i}` }] })),
              {
                work: (r) => r.eval_count ?? 1
              }
            )
            .pipe(Effect.retry({ schedule: busyRetry, while: (e) => e._tag === "ServerBusy" }))
        const answers = yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          call,
          { concurrency: "unbounded" }
        )
        assert.strictEqual(answers.length, 200)
        const stats = yield* sim.stats
        const snapshot = yield* slots.snapshot
        const sent = yield* Ref.get(peak)
        assert.isAtMost(stats.peakConcurrency[model]!, 4)
        // AIMD finds the edge by crossing it: at most a step or two beyond the backend's room, then it halves.
        assert.isAtMost(sent, stats.peakConcurrency[model]! + config.maxQueue + 2)
        assert.isTrue(snapshot.limit >= 2 && snapshot.limit <= 12, `limit ${snapshot.limit}`)
        assert.deepStrictEqual([snapshot.inFlight, snapshot.queued], [0, 0])
        yield* Effect.logDebug(`peak sent ${sent}, limit ${snapshot.limit}, 503s ${stats.rejected503}`)
      })
    )
  })
})
