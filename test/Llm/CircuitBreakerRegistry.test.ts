/** The CircuitBreaker service's registry (Llm/Keyed.ts): idle breakers at rest go, breakers holding state stay. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { TransportError } from "../../src/Domain/LlmError.js"
import * as CircuitBreaker from "../../src/Llm/CircuitBreaker.js"
import { RegistryFull } from "../../src/Llm/Keyed.js"

const transport = new TransportError({ backend: "http://a", method: "chat", reason: "connection refused" })

const namesOf = (registry: CircuitBreaker.CircuitBreaker) => Effect.map(registry.all, (all) => all.map((b) => b.name))

describe("CircuitBreaker registry", () => {
  it.effect("an idle breaker at rest is dropped; an open one, or one counting failures, is kept until at rest", () =>
    Effect.gen(function* () {
      const registry = yield* CircuitBreaker.CircuitBreaker
      const calm = yield* registry.breaker("http://calm")
      const flaky = yield* registry.breaker("http://flaky")
      const dead = yield* registry.breaker("http://dead", { consecutiveFailures: 1 })
      yield* Effect.exit(flaky.protect(Effect.fail(transport)))
      yield* Effect.exit(dead.protect(Effect.fail(transport)))
      assert.strictEqual(yield* dead.state, "open")
      yield* TestClock.adjust("30 minutes")
      assert.deepStrictEqual(yield* namesOf(registry), ["http://flaky", "http://dead"])
      assert.strictEqual(yield* registry.breaker("http://dead"), dead)
      assert.strictEqual((yield* flaky.stats).consecutiveFailures, 1)
      const fresh = yield* registry.breaker("http://calm")
      assert.notStrictEqual(fresh, calm)
      assert.strictEqual((yield* fresh.stats).transitions, 0)
      yield* dead.protect(Effect.void)
      assert.strictEqual(yield* dead.state, "closed")
      yield* TestClock.adjust("15 minutes")
      assert.deepStrictEqual(yield* namesOf(registry), ["http://flaky"])
      assert.notStrictEqual(yield* registry.breaker("http://dead"), dead)
    }).pipe(Effect.provide(CircuitBreaker.CircuitBreaker.Default))
  )

  it.effect("at the bound a new name drops the least recently used breaker at rest, never one holding state", () =>
    Effect.gen(function* () {
      const registry = yield* CircuitBreaker.CircuitBreaker
      const { capacity } = CircuitBreaker.registryDefaults
      const first = yield* registry.breaker("http://0")
      yield* Effect.exit(first.protect(Effect.fail(transport)))
      yield* TestClock.adjust("1 second")
      yield* Effect.forEach(
        Array.from({ length: capacity - 1 }, (_, i) => `http://${i + 1}`),
        (name) => registry.breaker(name)
      )
      yield* registry.breaker("http://new")
      const names = yield* namesOf(registry)
      assert.strictEqual(names.length, capacity)
      assert.deepStrictEqual([names.includes("http://0"), names.includes("http://1")], [true, false])
      assert.strictEqual(yield* registry.breaker("http://0"), first)
    }).pipe(Effect.provide(CircuitBreaker.CircuitBreaker.Default))
  )

  it.effect("when every breaker holds state, a new name fails with RegistryFull", () =>
    Effect.gen(function* () {
      const registry = yield* CircuitBreaker.CircuitBreaker
      const { capacity } = CircuitBreaker.registryDefaults
      yield* Effect.forEach(
        Array.from({ length: capacity }, (_, i) => `http://${i}`),
        (name) =>
          Effect.flatMap(registry.breaker(name, { consecutiveFailures: 1 }), (b) =>
            Effect.exit(b.protect(Effect.fail(transport)))
          )
      )
      assert.instanceOf(yield* Effect.flip(registry.breaker("http://new")), RegistryFull)
      assert.strictEqual((yield* registry.all).length, capacity)
    }).pipe(Effect.provide(CircuitBreaker.CircuitBreaker.Default))
  )
})
