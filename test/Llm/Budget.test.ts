/** Budget scopes: calls reserved before, tokens charged after, time, nesting, concurrency, the service. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Fiber, Option, TestClock } from "effect"
import { BudgetExceeded } from "../../src/Domain/LlmError.js"
import * as Budget from "../../src/Llm/Budget.js"

const exceeded = (budget: string, limit: BudgetExceeded["limit"], used: number, max: number) =>
  new BudgetExceeded({ budget, limit, used, max })

const failureOf = <A, R>(effect: Effect.Effect<A, BudgetExceeded, R>) =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result) ? Effect.succeed(result.left) : Effect.dieMessage("expected BudgetExceeded")
  )

/** A call as the engine makes it: reserve, run, charge the tokens it used. */
const call = (tokens: number) => Effect.zipRight(Budget.reserveCall, Budget.charge(tokens))

describe("Budget", () => {
  it.effect("a budget of 3 calls admits 3 and refuses the 4th", () =>
    Effect.gen(function* () {
      const error = yield* Effect.gen(function* () {
        yield* Effect.all([Budget.reserveCall, Budget.reserveCall, Budget.reserveCall])
        return yield* failureOf(Budget.reserveCall)
      }).pipe(Budget.scoped("tick", { calls: 3 }))
      assert.deepStrictEqual(error, exceeded("tick", "calls", 3, 3))
    })
  )

  it.effect("refundCall gives a reserved call back", () =>
    Effect.gen(function* () {
      yield* Budget.reserveCall
      yield* Budget.refundCall
      yield* Budget.reserveCall
      const [tick] = yield* Budget.usage
      assert.strictEqual(tick?.calls, 1)
    }).pipe(Budget.scoped("tick", { calls: 1 }))
  )

  it.effect("nested budgets deduct from both; the one that runs out is named", () =>
    Effect.gen(function* () {
      const tick = Budget.scoped("tick", { calls: 2 })
      const inner = yield* tick(
        Effect.gen(function* () {
          yield* Effect.all([Budget.reserveCall, Budget.reserveCall])
          const usage = yield* Budget.usage
          assert.deepStrictEqual(
            usage.map((u) => [u.name, u.calls]),
            [
              ["tick", 2],
              ["episode", 2]
            ]
          )
          return yield* failureOf(Budget.reserveCall)
        })
      )
      assert.deepStrictEqual(inner, exceeded("tick", "calls", 2, 2))
      yield* tick(Effect.all([Budget.reserveCall, Budget.reserveCall]))
      const outer = yield* failureOf(tick(Effect.all([Budget.reserveCall, Budget.reserveCall])))
      assert.deepStrictEqual(outer, exceeded("episode", "calls", 5, 5))
      const [episode] = yield* Budget.usage
      assert.strictEqual(episode?.calls, 5)
    }).pipe(Budget.scoped("episode", { calls: 5 }))
  )

  it.effect("tokens are charged after the calls; the last call may overshoot, the next is refused", () =>
    Effect.gen(function* () {
      yield* call(60)
      yield* call(60)
      const error = yield* failureOf(Budget.reserveCall)
      assert.deepStrictEqual(error, exceeded("key:alice", "tokens", 120, 100))
    }).pipe(Budget.scoped("key:alice", { tokens: 100 }))
  )

  it.effect("nested scopes charge tokens to every budget of the chain", () =>
    Effect.gen(function* () {
      yield* call(30).pipe(Budget.scoped("tick", { tokens: 1000 }))
      yield* call(80).pipe(Budget.scoped("tick", { tokens: 1000 }))
      const error = yield* failureOf(Budget.reserveCall.pipe(Budget.scoped("tick", { tokens: 1000 })))
      assert.deepStrictEqual(error, exceeded("episode", "tokens", 110, 100))
    }).pipe(Budget.scoped("episode", { tokens: 100 }))
  )

  it.effect("the work inside a scope with a time limit is interrupted when the time runs out", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(
        Effect.zipRight(Budget.reserveCall, Effect.never).pipe(Budget.scoped("tick", { time: "1 second" }))
      )
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust("1 millis")
      const error = yield* failureOf(Fiber.join(fiber))
      assert.deepStrictEqual(error, exceeded("tick", "time", 1000, 1000))
    })
  )

  it.effect("a call after the time is up is refused", () =>
    Effect.gen(function* () {
      // A daemon fiber outlives the scope's interruption but still carries its budget.
      const late = Effect.zipRight(Effect.sleep("3 seconds"), Effect.either(Budget.reserveCall))
      const daemon = yield* Effect.forkDaemon(late).pipe(Budget.scoped("tick", { time: "2 seconds" }))
      yield* TestClock.adjust("3 seconds")
      const result = yield* Fiber.join(daemon)
      assert.deepStrictEqual(result, Either.left(exceeded("tick", "time", 3000, 2000)))
    })
  )

  it.effect("concurrent reservations never exceed the limit", () =>
    Effect.gen(function* () {
      const results = yield* Effect.all(
        Array.from({ length: 10 }, () => Effect.either(Effect.zipRight(Effect.yieldNow(), Budget.reserveCall))),
        { concurrency: "unbounded" }
      ).pipe(Budget.scoped("tick", { calls: 3 }))
      assert.strictEqual(results.filter(Either.isRight).length, 3)
      assert.strictEqual(results.filter(Either.isLeft).length, 7)
    })
  )

  it.effect("outside any budget scope everything passes", () =>
    Effect.gen(function* () {
      for (let i = 0; i < 100; i++) yield* call(1_000_000)
      yield* Budget.refundCall
      assert.deepStrictEqual(yield* Budget.usage, [])
    })
  )

  it.effect("usage reports calls, tokens, elapsed time and limits, innermost first", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust("250 millis")
      yield* call(42)
      const usage = yield* Budget.usage
      assert.deepStrictEqual(usage, [{ name: "tick", calls: 1, tokens: 42, elapsedMs: 250, limits: { calls: 9 } }])
    }).pipe(Budget.scoped("tick", { calls: 9 }))
  )

  it.effect("the service through its Layer counts exhaustion by limit", () =>
    Effect.gen(function* () {
      const budget = yield* Budget.Budget
      yield* Effect.either(Effect.all([budget.reserveCall, budget.reserveCall]).pipe(budget.scoped("a", { calls: 1 })))
      yield* Effect.either(
        Effect.gen(function* () {
          yield* budget.reserveCall
          yield* budget.charge(10)
          yield* budget.reserveCall
        }).pipe(budget.scoped("b", { tokens: 10 }))
      )
      const slow = yield* Effect.fork(
        Effect.either(
          Effect.never.pipe(budget.scoped("c", { time: "1 second" }), budget.scoped("d", { time: "1 minute" }))
        )
      )
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(slow), Either.left(exceeded("c", "time", 1000, 1000)))
      assert.deepStrictEqual(yield* budget.stats, { calls: 1, tokens: 1, time: 1 })
      assert.deepStrictEqual(yield* budget.usage, [])
    }).pipe(Effect.provide(Budget.layer))
  )
})
