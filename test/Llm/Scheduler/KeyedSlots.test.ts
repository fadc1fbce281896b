/** The registry: one Slots per key, kept with its first options, and a snapshot of all. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { KeyedSlots } from "../../../src/Llm/Scheduler/KeyedSlots.js"

describe("KeyedSlots", () => {
  it.effect("keeps one Slots per key with the options it was first given", () =>
    Effect.gen(function* () {
      const a = yield* KeyedSlots.slots("http://a", { limit: 2 })
      const again = yield* KeyedSlots.slots("http://a", { limit: 9 })
      assert.strictEqual(again, a)
      const b = yield* KeyedSlots.slots("http://b", { limit: "adaptive", adaptive: { initial: 3 } })
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* a.acquire("interactive")
          const snapshot = yield* KeyedSlots.snapshot
          assert.deepStrictEqual(Object.keys(snapshot), ["http://a", "http://b"])
          assert.deepStrictEqual([snapshot["http://a"]!.limit, snapshot["http://a"]!.inFlight], [2, 1])
          assert.strictEqual(snapshot["http://b"]!.limit, 3)
        })
      )
      assert.strictEqual(yield* b.withSlot("batch", Effect.succeed("ok")), "ok")
      assert.strictEqual((yield* KeyedSlots.snapshot)["http://a"]!.inFlight, 0)
    }).pipe(Effect.provide(KeyedSlots.Default))
  )
})
