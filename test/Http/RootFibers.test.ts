/**
 * Renewing Effect's set of root fibers (Http/RootFibers.ts): the same fibers before and after, a fiber that ends
 * after the renewal leaves the new set, and the layer renews it every second while it is in scope.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, GlobalValue, Layer, TestClock } from "effect"
import * as RootFibers from "../../src/Http/RootFibers.js"

/** The Set Effect holds its root fibers in, as RootFibers.ts finds it. */
const rootSet = (): Set<unknown> =>
  (GlobalValue.globalValue<unknown>(Symbol.for("effect/FiberScope/Global"), () => undefined) as { roots: Set<unknown> })
    .roots

describe("RootFibers", () => {
  it.effect("renew keeps every root fiber in a new set, and an ending fiber leaves the new one", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkDaemon(Effect.never)
      const before = rootSet()
      assert.isTrue(before.has(fiber))
      assert.isTrue(RootFibers.renew())
      const after = rootSet()
      assert.notStrictEqual(after, before)
      assert.deepStrictEqual([...after], [...before])
      yield* Fiber.interrupt(fiber)
      assert.isFalse(rootSet().has(fiber))
      assert.isFalse((yield* Fiber.roots).includes(fiber))
    })
  )

  it.scoped("the layer renews the set every second while it is in scope", () =>
    Effect.gen(function* () {
      yield* Layer.build(RootFibers.layer)
      const first = rootSet()
      yield* TestClock.adjust("1 second")
      const second = rootSet()
      assert.notStrictEqual(second, first)
      yield* TestClock.adjust("1 second")
      assert.notStrictEqual(rootSet(), second)
    })
  )
})
