/** The registry of per-key limiters (Http/AuthLimits.ts on Llm/Keyed.ts): held per request, dropped when idle at rest. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { KeyLimited, makeRegistry } from "../../src/Http/AuthLimits.js"
import type { SharedStoreUnavailable } from "../../src/Domain/LlmError.js"
import type { RegistryFull } from "../../src/Llm/Keyed.js"

const refusal = (e: KeyLimited | RegistryFull | SharedStoreUnavailable) => (e instanceof KeyLimited ? e.limit : e._tag)

describe("AuthLimits registry", () => {
  it.scoped("a key's limiters are held while a request runs, kept while refilling, dropped once idle and full", () =>
    Effect.gen(function* () {
      const registry = yield* makeRegistry
      const request = (id: string, limits: { rpm?: number; tpm?: number; concurrency?: number }) =>
        registry.withLimiter(id, limits, (limiter) => limiter.run((headers) => Effect.succeed(headers)))
      yield* request("idle", { rpm: 60 })
      const running = yield* Effect.fork(
        registry.withLimiter("running", { concurrency: 1 }, (limiter) => limiter.run(() => Effect.never))
      )
      yield* registry.withLimiter("indebted", { tpm: 100 }, (limiter) => limiter.charge(100 * 30))
      yield* TestClock.adjust("20 minutes")
      assert.sameMembers([...(yield* registry.keys)], ["running", "indebted"])
      const busy = yield* Effect.flip(request("running", { concurrency: 1 }))
      assert.strictEqual(refusal(busy), "concurrency")
      yield* Fiber.interrupt(running)
      yield* TestClock.adjust("25 minutes")
      assert.deepStrictEqual(yield* registry.keys, [])
    })
  )

  it.scoped("a key seen again after its limiters went gets new ones, with the limits it has now", () =>
    Effect.gen(function* () {
      const registry = yield* makeRegistry
      const request = (rpm: number) =>
        registry.withLimiter("key", { rpm }, (limiter) => limiter.run((headers) => Effect.succeed(headers)))
      assert.strictEqual((yield* request(1))["x-ratelimit-limit-requests"], "1")
      const refused = yield* Effect.flip(request(100))
      assert.strictEqual(refusal(refused), "requests")
      assert.strictEqual(refused instanceof KeyLimited && refused.headers["x-ratelimit-limit-requests"], "1")
      yield* TestClock.adjust("15 minutes")
      assert.deepStrictEqual(yield* registry.keys, [])
      const fresh = yield* request(100)
      assert.deepStrictEqual(
        [fresh["x-ratelimit-limit-requests"], fresh["x-ratelimit-remaining-requests"]],
        ["100", "99"]
      )
    })
  )
})
