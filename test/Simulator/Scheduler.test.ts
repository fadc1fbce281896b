import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { Ollama } from "ollama"
import { serverBusyMessage } from "../../src/Domain/Common.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import type { SimulatorConfig } from "../../src/Simulator/SimulatorConfig.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { client, promise, statsWhen } from "./support.js"

const model = "llama3.2:latest"
const messages = [{ role: "user", content: "count to three" }]

/** Runs `body` against a fresh simulator with `config` (real clock). */
const withSim = <A, E>(config: SimulatorConfig, body: Effect.Effect<A, E, Simulator>) =>
  Effect.provide(body, Simulator.layerTest(config))

/** Settles `n` concurrent chats; yields the status codes (200 or the error's status). */
const burst = (ollama: Ollama, n: number, name = "llama3.2") =>
  promise(() =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        ollama.chat({ model: name, messages: [{ role: "user", content: `request ${i}` }] }).then(
          () => 200,
          (e: { status_code?: number; error?: string }) => {
            if (e.status_code === 503) assert.strictEqual(e.error, serverBusyMessage)
            return e.status_code ?? -1
          }
        )
      )
    )
  )

const slots = (numParallel: number, outputTokenMs: number, overrides: Parameters<typeof fast>[0] = {}) =>
  mapModels(fast(overrides), (m) => ({ ...m, numParallel, outputTokenMs }))

describe("Simulator scheduler", () => {
  it.live("peak concurrency reaches numParallel and never exceeds it under 50 concurrent calls", () =>
    withSim(
      slots(4, 2),
      Effect.gen(function* () {
        const ollama = yield* client
        const codes = yield* burst(ollama, 50)
        assert.isTrue(codes.every((c) => c === 200))
        const stats = yield* statsWhen((s) => s.inFlight[model] === 0)
        assert.strictEqual(stats.peakConcurrency[model], 4)
        assert.strictEqual(stats.requests["/api/chat"], 50)
      })
    )
  )

  it.live("requests for a loaded model queue without limit (ollama#7758) unless strictQueue is on", () =>
    Effect.gen(function* () {
      const warm = (ollama: Ollama) => promise(() => ollama.chat({ model: "llama3.2", messages: [] }))
      const loose = yield* withSim(
        slots(1, 3, { maxQueue: 2 }),
        Effect.flatMap(client, (ollama) => Effect.zipRight(warm(ollama), burst(ollama, 10)))
      )
      assert.isTrue(loose.every((c) => c === 200))
      const strict = yield* withSim(
        slots(1, 3, { maxQueue: 2, strictQueue: true }),
        Effect.gen(function* () {
          const ollama = yield* client
          yield* warm(ollama)
          const codes = yield* burst(ollama, 10)
          const stats = yield* statsWhen(() => true)
          return { codes, rejected: stats.rejected503 }
        })
      )
      assert.include(strict.codes, 503)
      assert.include(strict.codes, 200)
      assert.strictEqual(strict.rejected, strict.codes.filter((c) => c === 503).length)
    })
  )

  it.live("a full scheduling queue during a slow load answers 503 server busy", () =>
    withSim(
      mapModels(fast({ maxQueue: 1 }), (m) => ({ ...m, loadMs: 1_000 })),
      Effect.gen(function* () {
        const ollama = yield* client
        const codes = yield* burst(ollama, 3)
        assert.include(codes, 503)
        assert.include(codes, 200)
        const stats = yield* statsWhen(() => true)
        assert.isAtLeast(stats.peakQueueDepth, 1)
        assert.strictEqual(stats.loads, 1)
        const final = yield* promise(() => ollama.chat({ model: "llama3.2", messages }))
        assert.isBelow(final.load_duration!, 500_000_000)
      })
    )
  )

  it.live("load_duration reflects the load a request paid for", () =>
    withSim(
      mapModels(fast(), (m) => ({ ...m, loadMs: 200 })),
      Effect.gen(function* () {
        const ollama = yield* client
        const cold = yield* promise(() => ollama.chat({ model: "llama3.2", messages }))
        const warm = yield* promise(() => ollama.chat({ model: "llama3.2", messages }))
        assert.isAtLeast(cold.load_duration!, 190_000_000)
        assert.isBelow(warm.load_duration!, 190_000_000)
      })
    )
  )

  it.live("keep_alive unloads the model after its last request, as /api/ps shows", () =>
    withSim(
      fast(),
      Effect.gen(function* () {
        const ollama = yield* client
        yield* promise(() => ollama.chat({ model: "llama3.2", messages, keep_alive: "300ms" }))
        yield* promise(() => ollama.chat({ model: "qwen3", messages, keep_alive: -1 }))
        const names = () => promise(() => ollama.ps()).pipe(Effect.map((ps) => ps.models.map((m) => m.name)))
        assert.includeMembers(yield* names(), ["llama3.2:latest", "qwen3:latest"])
        const later = yield* names().pipe(
          Effect.filterOrFail((n) => !n.includes("llama3.2:latest")),
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("5 seconds"))),
          Effect.orDie
        )
        assert.deepStrictEqual(later, ["qwen3:latest"])
        const forever = (yield* promise(() => ollama.ps())).models[0]!
        assert.isAbove(Date.parse(String(forever.expires_at)), Date.now() + 100 * 365 * 86_400_000)
        const stats = yield* statsWhen(() => true)
        assert.strictEqual(stats.unloads, 1)
      })
    )
  )

  it.live("at most maxLoadedModels stay loaded; the least recently used idle one is evicted", () =>
    withSim(
      fast({ maxLoadedModels: 2 }),
      Effect.gen(function* () {
        const ollama = yield* client
        yield* promise(() => ollama.chat({ model: "llama3.2", messages }))
        yield* promise(() => ollama.chat({ model: "qwen3", messages }))
        yield* promise(() => ollama.embed({ model: "all-minilm", input: "x" }))
        const running = (yield* promise(() => ollama.ps())).models.map((m) => m.name).sort()
        assert.deepStrictEqual(running, ["all-minilm:latest", "qwen3:latest"])
      })
    )
  )

  it.live("a client that aborts a stream is counted as a disconnect and frees its slot at once", () =>
    withSim(
      slots(1, 100),
      Effect.gen(function* () {
        const ollama = yield* client
        yield* promise(async () => {
          const stream = await ollama.chat({ model: "llama3.2", messages, stream: true })
          for await (const _ of stream) {
            stream.abort()
          }
        }).pipe(Effect.catchAllDefect(() => Effect.void))
        const stats = yield* statsWhen((s) => s.disconnects >= 1 && s.inFlight[model] === 0)
        assert.strictEqual(stats.disconnects, 1)
        const next = yield* promise(() => ollama.chat({ model: "llama3.2", messages, options: { num_predict: 2 } }))
        assert.isTrue(next.done)
      })
    )
  )
})
