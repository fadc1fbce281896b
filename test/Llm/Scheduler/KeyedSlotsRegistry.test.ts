/** KeyedSlots' registry (Llm/Keyed.ts): slots with work stay, idle slots go after the idle time-to-live. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope, TestClock } from "effect"
import { KeyedSlots } from "../../../src/Llm/Scheduler/KeyedSlots.js"

describe("KeyedSlots registry", () => {
  it.effect("slots with a call in flight are kept; idle slots go, and new ones start empty", () =>
    Effect.gen(function* () {
      const idle = yield* KeyedSlots.slots("http://idle", { limit: 1 })
      const working = yield* KeyedSlots.slots("http://working", { limit: 1 })
      const call = yield* Scope.make()
      yield* Scope.extend(working.acquire("interactive"), call)
      yield* TestClock.adjust("30 minutes")
      assert.deepStrictEqual(Object.keys(yield* KeyedSlots.snapshot), ["http://working"])
      assert.strictEqual(yield* KeyedSlots.slots("http://working", { limit: 1 }), working)
      assert.notStrictEqual(yield* KeyedSlots.slots("http://idle", { limit: 1 }), idle)
      yield* Scope.close(call, Exit.void)
      yield* TestClock.adjust("15 minutes")
      const fresh = yield* KeyedSlots.slots("http://working", { limit: 1 })
      assert.notStrictEqual(fresh, working)
      assert.strictEqual((yield* fresh.snapshot).inFlight, 0)
    }).pipe(Effect.provide(KeyedSlots.Default))
  )
})
