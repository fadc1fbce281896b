import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Ollama } from "ollama"
import { serverBusyMessage } from "../../src/Domain/Common.js"
import type { Faults } from "../../src/Simulator/Faults.js"
import { defaultFaults, FaultInjector } from "../../src/Simulator/Faults.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import { client, failure, get, lines, post, promise, statsWhen, url } from "./support.js"

const messages = [{ role: "user", content: "tell me something" }]
// ollama-js writes `stream` into the request object it is given, so each call gets a fresh one.
const chat = () => ({ model: "llama3.2", messages })

/** Runs `body` with `faults` set, then turns every fault off again. */
const withFaults = <A, E, R>(faults: Partial<Faults>, body: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Simulator, (sim) =>
    Effect.ensuring(Effect.zipRight(sim.setFaults(faults), body), sim.setFaults({ ...defaultFaults }))
  )

layer(Simulator.layerTest(fast()), { excludeTestServices: true })("Simulator faults", (it) => {
  it.effect("error500 and error503 answer before any byte", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const e500 = yield* withFaults(
        { error500: 1 },
        failure(() => ollama.chat(chat()))
      )
      assert.deepStrictEqual([e500.status_code, e500.error], [500, "simulated internal error"])
      const e503 = yield* withFaults(
        { error503: 1 },
        failure(() => ollama.chat({ ...chat(), stream: true }))
      )
      assert.deepStrictEqual([e503.status_code, e503.error], [503, serverBusyMessage])
      const stats = yield* statsWhen(() => true)
      assert.isAtLeast(stats.faults.error500, 1)
      assert.isAtLeast(stats.rejected503, 1)
    })
  )

  it.effect("reset destroys the connection: the client sees a network error", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const before = (yield* statsWhen(() => true)).disconnects
      const e = yield* withFaults(
        { reset: 1 },
        failure(() => ollama.embed({ model: "all-minilm", input: "x" }))
      )
      assert.strictEqual(e.name, "TypeError")
      assert.match(e.message, /fetch failed/)
      const stats = yield* statsWhen((s) => s.faults.reset >= 1)
      assert.strictEqual(stats.disconnects, before)
    })
  )

  it.effect("stall hangs until the client gives up, and the hang ends with the connection", () =>
    Effect.gen(function* () {
      const base = yield* url
      const before = (yield* statsWhen(() => true)).disconnects
      const timed = new Ollama({
        host: base,
        fetch: (input, init) => fetch(input, { ...init, signal: AbortSignal.timeout(300) })
      })
      const e = yield* withFaults(
        { stall: 1, stallMs: 60_000 },
        failure(() => timed.chat(chat()))
      )
      assert.strictEqual(e.name, "TimeoutError")
      const stats = yield* statsWhen((s) => s.disconnects > before)
      assert.isAtLeast(stats.faults.stall, 1)
    })
  )

  it.effect("malformed puts one broken line mid-stream; the stream still ends with done", () =>
    Effect.gen(function* () {
      const base = yield* url
      const body = yield* withFaults({ malformed: 1 }, post(base, "/api/chat", { model: "llama3.2", messages }))
      const parsed = lines(body.text)
      assert.strictEqual(parsed.filter((l) => l === undefined).length, 1)
      assert.isDefined(parsed[0])
      assert.strictEqual(parsed[parsed.length - 1]!.done, true)
    })
  )

  it.effect("midStreamError ends the stream with an error line and no done", () =>
    Effect.gen(function* () {
      const base = yield* url
      const body = yield* withFaults(
        { midStreamError: 1 },
        post(base, "/api/generate", { model: "llama3.2", prompt: "x" })
      )
      assert.strictEqual(body.status, 200)
      const parsed = lines(body.text)
      assert.isAbove(parsed.length, 1)
      assert.deepStrictEqual(parsed[parsed.length - 1], { error: "simulated mid-stream error" })
      assert.isTrue(parsed.every((l) => l !== undefined && l.done !== true))
      const ollama = yield* client
      const thrown = yield* withFaults(
        { midStreamError: 1 },
        failure(async () => {
          for await (const _ of await ollama.chat({ ...chat(), stream: true })) {
            // drain
          }
        })
      )
      assert.strictEqual(thrown.message, "simulated mid-stream error")
    })
  )

  it.effect("spike adds latency before the answer", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const reply = yield* withFaults(
        { spike: 1, spikeMs: 300 },
        promise(() => ollama.chat(chat()))
      )
      assert.isAtLeast(reply.total_duration, 290_000_000)
      const stats = yield* statsWhen(() => true)
      assert.isAtLeast(stats.faults.spike, 1)
    })
  )

  it.effect("the control API reads, merges and validates faults, and resets the counters", () =>
    Effect.gen(function* () {
      const base = yield* url
      const put = yield* post(base, "/_sim/faults", { error500: 0.25, spikeMs: 10 }, "PUT")
      assert.strictEqual(put.status, 200)
      const read = JSON.parse((yield* get(base, "/_sim/faults")).text) as Faults
      assert.strictEqual(read.error500, 0.25)
      assert.strictEqual(read.spikeMs, 10)
      assert.strictEqual(read.reset, 0)
      const bad = yield* post(base, "/_sim/faults", { error500: 2 }, "PUT")
      assert.strictEqual(bad.status, 400)
      yield* post(base, "/_sim/faults", { ...defaultFaults }, "PUT")
      const reset = yield* post(base, "/_sim/reset", {})
      assert.strictEqual(reset.status, 200)
      const stats = JSON.parse((yield* get(base, "/_sim/stats")).text)
      assert.strictEqual(stats.disconnects, 0)
      assert.deepStrictEqual(stats.requests, {})
      assert.strictEqual(stats.faults.error500, 0)
    })
  )
})

describe("FaultInjector", () => {
  it("fault draws are reproducible for a seed", () => {
    const draws = (seed: number) => {
      const injector = new FaultInjector({ ...defaultFaults, error500: 0.3, reset: 0.3, seed })
      return Array.from({ length: 50 }, () => injector.decide())
    }
    assert.deepStrictEqual(draws(3), draws(3))
    assert.notDeepEqual(draws(3), draws(4))
    assert.include(draws(3), "error500")
    assert.include(draws(3), undefined)
  })
})
