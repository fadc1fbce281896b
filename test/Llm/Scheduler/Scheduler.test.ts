/** The registry: one Slots per key, kept with its first options, and a snapshot of all. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Scheduler } from "../../../src/Llm/Scheduler/Scheduler.js"

describe("Scheduler", () => {
  it.effect("keeps one Slots per key with the options it was first given", () =>
    Effect.gen(function* () {
      const a = yield* Scheduler.slots("http://a", { limit: 2 })
      const again = yield* Scheduler.slots("http://a", { limit: 9 })
      assert.strictEqual(again, a)
      const b = yield* Scheduler.slots("http://b", { limit: "adaptive", adaptive: { initial: 3 } })
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* a.acquire("interactive")
          const snapshot = yield* Scheduler.snapshot
          assert.deepStrictEqual(Object.keys(snapshot), ["http://a", "http://b"])
          assert.deepStrictEqual([snapshot["http://a"]!.limit, snapshot["http://a"]!.inFlight], [2, 1])
          assert.strictEqual(snapshot["http://b"]!.limit, 3)
        })
      )
      assert.strictEqual(yield* b.withSlot("batch", Effect.succeed("ok")), "ok")
      assert.strictEqual((yield* Scheduler.snapshot)["http://a"]!.inFlight, 0)
    }).pipe(Effect.provide(Scheduler.Default))
  )
})
