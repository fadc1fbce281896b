/**
 * The engine against the simulator with faults: what the protection layers promise, end to end.
 * Real servers, so real time (`layer(..., { excludeTestServices: true })`, `it.live`); no assertion on speed: a
 * test waits for a condition (`eventually`), never for a fixed time. Each test has its own simulator and engine.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Either, Option, Ref, Stream } from "effect"
import { Backends } from "../../src/Llm/Backends.js"
import { keyOf } from "../../src/Llm/CacheKey.js"
import { Llm } from "../../src/Llm/Llm.js"
import { ResponseCache } from "../../src/Llm/ResponseCache.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import * as Fallback from "../../src/Llm/Fallback.js"
import { chatRequest, eventually, overSimulator, quickRetry } from "./engine.js"

const live = { excludeTestServices: true } as const

describe("fault tolerance against the simulator, shipped defaults", () => {
  const flaky = fast({ faults: { error500: 0.2, reset: 0.05, stall: 0.02, seed: 7 } })
  layer(
    overSimulator(flaky),
    live
  )((it) => {
    it.effect(
      "at 20% 500s, 5% resets and 2% stalls, 600 calls (half streamed) all succeed, the breaker never trips",
      () =>
        Effect.gen(function* () {
          const llm = yield* Llm
          const sim = yield* Simulator
          const backends = yield* Backends
          yield* sim.resetStats
          const one = (i: number) =>
            i % 2 === 0
              ? Effect.map(llm.chat(chatRequest(`question ${i}`)), (a) => a.done)
              : Effect.map(Stream.runLast(llm.chatStream(chatRequest(`question ${i}`))), (last) =>
                  Option.exists(last, (chunk) => chunk.done)
                )
          const answers = yield* Effect.forEach(
            Array.from({ length: 600 }, (_, i) => i),
            one,
            { concurrency: 16 }
          )
          assert.strictEqual(answers.filter(Boolean).length, 600)
          const stats = yield* sim.stats
          assert.isAbove(stats.faults.error500 + stats.faults.reset, 90)
          assert.isAbove(stats.faults.stall, 5)
          assert.isAbove((yield* llm.stats).retries, 90)
          assert.isAtLeast(yield* llm.hedges, stats.faults.stall - 1)
          const breaker = yield* backends.all[0]!.breaker.stats
          assert.strictEqual(breaker.trips, 0)
        }),
      // a correctness bound: a loaded machine took ~115 s for 1,000 calls (the 10,000-call run is test/Cli/flaky)
      300_000
    )
  })
})

describe("the circuit breaker against the simulator, shipped defaults", () => {
  layer(
    overSimulator(fast()),
    live
  )((it) => {
    it.effect(
      "a backend that goes down: open within 20 calls, then fail fast without reaching it; back up, traffic resumes",
      () =>
        Effect.gen(function* () {
          const llm = yield* Llm
          const sim = yield* Simulator
          const backends = yield* Backends
          const breaker = backends.all[0]!.breaker
          yield* Effect.forEach(
            Array.from({ length: 50 }, (_, i) => i),
            (i) => llm.chat(chatRequest(`up ${i}`)),
            {
              concurrency: 16
            }
          )
          yield* sim.setFaults({ error500: 1 })
          const calls = yield* Ref.make(0)
          const down = (i: number) =>
            Effect.zipRight(
              Ref.update(calls, (n) => n + 1),
              Effect.exit(llm.chat(chatRequest(`down ${i}`)))
            )
          // 16 callers until the breaker opens: it must open within 20 calls
          yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) => Effect.flatMap(breaker.state, (state) => (state === "closed" ? down(i) : Effect.void)),
            { concurrency: 16 }
          )
          assert.strictEqual(yield* breaker.state, "open")
          assert.isAtMost(yield* Ref.get(calls), 20)
          assert.isTrue((yield* breaker.stats).dead)
          const seen = (yield* sim.stats).requests["/api/chat"] ?? 0
          // later calls fail at once with CircuitOpen, on the TestClock-free path: no wait, no request
          for (let i = 0; i < 20; i++) {
            const error = yield* Effect.flip(llm.chat(chatRequest(`open ${i}`), { fallbacks: [] }))
            assert.strictEqual(error._tag, "CircuitOpen")
          }
          assert.strictEqual((yield* sim.stats).requests["/api/chat"], seen)
          // back up: once the open period (5 s by default) passed, a probe closes it, with no restart
          yield* sim.setFaults({ error500: 0 })
          yield* eventually(breaker.state, (state) => state !== "open", "the breaker's open period ends")
          const answers = yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) => llm.chat(chatRequest(`again ${i}`)),
            { concurrency: 16 }
          )
          assert.strictEqual(answers.length, 20)
          assert.strictEqual(yield* breaker.state, "closed")
        }),
      60_000
    )
  })
})

describe("overload against the simulator", () => {
  const capacity = 4
  const busy = fast({
    strictQueue: true,
    maxQueue: capacity,
    models: fast().models.map((m) => ({ ...m, numParallel: capacity, outputTokenMs: 2 }))
  })
  // the knob under test: slots configured at 8x what the backend has
  layer(
    overSimulator(busy, { backend: { slots: 8 * capacity } }),
    live
  )((it) => {
    it.effect(
      "at 2x capacity with slots at 8x the backend's, every call succeeds: 503s shrink the limit and re-queue",
      () =>
        Effect.gen(function* () {
          const llm = yield* Llm
          const sim = yield* Simulator
          const backends = yield* Backends
          yield* sim.resetStats
          // 2 x (slots + queue) callers at once, 400 calls
          const answers = yield* Effect.forEach(
            Array.from({ length: 400 }, (_, i) => i),
            (i) => Effect.either(llm.chat({ ...chatRequest(`load ${i}`), options: { num_predict: 10 } })),
            { concurrency: 4 * capacity }
          )
          assert.strictEqual(answers.filter(Either.isRight).length, 400)
          const stats = yield* sim.stats
          assert.isAbove(stats.rejected503, 0)
          const slots = yield* backends.all[0]!.slots.snapshot
          assert.isBelow(slots.limit, 8 * capacity)
          assert.strictEqual((yield* backends.all[0]!.breaker.stats).trips, 0)
        }),
      60_000
    )
  })
})

describe("fallbacks and the cache against the simulator", () => {
  const settings = { retry: { ...quickRetry, maxRetries: 1 }, cache: { ttl: "200 millis" } } as const
  /** Its own simulator and engine for each test: no test sees another's faults, cache entries or counts. */
  const own = overSimulator(fast(), settings)

  it.live("a primary model that keeps failing falls back to the alternate", () =>
    Effect.gen(function* () {
      const llm = yield* Llm
      const answer = yield* llm.chatServed(chatRequest("hello", "no-such-model"), {
        fallbacks: [Fallback.alternate("llama3.2")]
      })
      assert.strictEqual(answer.served, "alternate:llama3.2")
      assert.strictEqual(answer.value.model, "llama3.2")
      const direct = yield* Effect.flip(llm.chat(chatRequest("hello", "no-such-model"), { fallbacks: [] }))
      assert.strictEqual(direct._tag, "ModelNotFound")
    }).pipe(Effect.provide(own))
  )

  it.live("a stale cache entry is served when every backend is down", () =>
    Effect.gen(function* () {
      const llm = yield* Llm
      const sim = yield* Simulator
      const cache = yield* ResponseCache
      const fresh = yield* llm.chatServed(chatRequest("remember me"))
      assert.strictEqual(fresh.served, "primary")
      yield* sim.setFaults({ reset: 1 })
      const key = keyOf("chat", chatRequest("remember me"))
      yield* eventually(cache.answersNow(key), (answered) => !answered, "the cache entry expires (ttl 200 ms)")
      const stale = yield* llm.chatServed(chatRequest("remember me"))
      assert.strictEqual(stale.served, "stale")
      assert.strictEqual(stale.value.message.content, fresh.value.message.content)
    }).pipe(Effect.provide(own))
  )

  it.live("100 identical concurrent calls cost one upstream request", () =>
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
    }).pipe(Effect.provide(own))
  )
})
