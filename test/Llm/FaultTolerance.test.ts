/**
 * The engine against the simulator with faults: what the protection layers promise, end to end.
 * Real servers, so real time (`layer(..., { excludeTestServices: true })`); no assertion on speed.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { Llm } from "../../src/Llm/Llm.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import * as Fallback from "../../src/Llm/Fallback.js"
import { chatRequest, overSimulator, quickRetry } from "./engine.js"

const live = { excludeTestServices: true } as const

describe("fault tolerance against the simulator", () => {
  const flaky = fast({ faults: { error500: 0.2, reset: 0.05, seed: 7 } })
  layer(
    overSimulator(flaky, {
      retry: { ...quickRetry, maxRetries: 12 },
      backend: { breaker: { consecutiveFailures: 1000, minimumVolume: 100_000 } }
    }),
    live
  )((it) => {
    it.effect("at 20% 500s and 5% resets, 500 calls all succeed and every failure was retried once", () =>
      Effect.gen(function* () {
        const llm = yield* Llm
        const sim = yield* Simulator
        yield* sim.resetStats
        const answers = yield* Effect.forEach(
          Array.from({ length: 500 }, (_, i) => chatRequest(`question ${i}`)),
          (req) => llm.chat(req),
          { concurrency: 16 }
        )
        assert.strictEqual(answers.length, 500)
        assert.isTrue(answers.every((a) => a.done))
        const stats = yield* sim.stats
        const failures = stats.faults.error500 + stats.faults.reset
        assert.isAbove(failures, 50)
        assert.strictEqual((yield* llm.stats).retries, failures)
        assert.strictEqual(stats.requests["/api/chat"], 500 + failures)
      })
    )
  })
})

describe("the circuit breaker against the simulator", () => {
  const settings = {
    retry: { maxRetries: 0 },
    defaultFallbacks: [],
    backend: { breaker: { consecutiveFailures: 3, openFor: "300 millis" } }
  } as const
  layer(
    overSimulator(fast(), settings),
    live
  )((it) => {
    it.effect("opens after 3 failures, fails fast without touching the network, then a probe closes it", () =>
      Effect.gen(function* () {
        const llm = yield* Llm
        const sim = yield* Simulator
        yield* sim.setFaults({ error500: 1 })
        yield* sim.resetStats
        for (let i = 0; i < 3; i++) {
          const exit = yield* Effect.exit(llm.chat(chatRequest(`down ${i}`)))
          assert.isTrue(Exit.isFailure(exit))
        }
        const seen = (yield* sim.stats).requests["/api/chat"] ?? 0
        assert.strictEqual(seen, 3)
        for (let i = 0; i < 5; i++) {
          const error = yield* Effect.flip(llm.chat(chatRequest(`open ${i}`)))
          assert.strictEqual(error._tag, "CircuitOpen")
        }
        assert.strictEqual((yield* sim.stats).requests["/api/chat"], seen)
        yield* sim.setFaults({ error500: 0 })
        yield* Effect.sleep("400 millis")
        const probe = yield* llm.chat(chatRequest("probe"))
        assert.isTrue(probe.done)
        assert.strictEqual((yield* sim.stats).requests["/api/chat"], seen + 1)
        yield* llm.chat(chatRequest("closed again"))
      })
    )
  })
})

describe("fallbacks and the cache against the simulator", () => {
  const settings = { retry: { ...quickRetry, maxRetries: 1 }, cache: { ttl: "200 millis" } } as const
  layer(
    overSimulator(fast(), settings),
    live
  )((it) => {
    it.effect("a primary model that keeps failing falls back to the alternate", () =>
      Effect.gen(function* () {
        const llm = yield* Llm
        const answer = yield* llm.chatServed(chatRequest("hello", "no-such-model"), {
          fallbacks: [Fallback.alternate("llama3.2")]
        })
        assert.strictEqual(answer.served, "alternate:llama3.2")
        assert.strictEqual(answer.value.model, "llama3.2")
        const direct = yield* Effect.flip(llm.chat(chatRequest("hello", "no-such-model"), { fallbacks: [] }))
        assert.strictEqual(direct._tag, "ModelNotFound")
      })
    )

    it.effect("a stale cache entry is served when every backend is down", () =>
      Effect.gen(function* () {
        const llm = yield* Llm
        const sim = yield* Simulator
        const fresh = yield* llm.chatServed(chatRequest("remember me"))
        assert.strictEqual(fresh.served, "primary")
        yield* sim.setFaults({ reset: 1 })
        yield* Effect.sleep("300 millis")
        const stale = yield* llm.chatServed(chatRequest("remember me"))
        yield* sim.setFaults({ reset: 0 })
        assert.strictEqual(stale.served, "stale")
        assert.strictEqual(stale.value.message.content, fresh.value.message.content)
      })
    )

    it.effect("100 identical concurrent calls cost one upstream request", () =>
      Effect.gen(function* () {
        const llm = yield* Llm
        const sim = yield* Simulator
        const before = (yield* sim.stats).requests["/api/chat"] ?? 0
        const answers = yield* Effect.all(
          Array.from({ length: 100 }, () => llm.chatServed(chatRequest("the same question"))),
          { concurrency: "unbounded" }
        )
        assert.strictEqual((yield* sim.stats).requests["/api/chat"], before + 1)
        assert.strictEqual(new Set(answers.map((a) => a.value.message.content)).size, 1)
        assert.strictEqual(answers.filter((a) => a.lookup === "miss").length, 1)
      })
    )
  })
})
