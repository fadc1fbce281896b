/** Jobs: bounded concurrency, order, completion order, failures, constant memory. */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Ref, Stream, TestClock } from "effect"
import * as Jobs from "../../src/Llm/Jobs.js"

/** A job that takes `ms` milliseconds (test time) and answers its name. */
const timed = ([name, ms]: readonly [string, number]) => Effect.as(Effect.sleep(`${ms} millis`), name)

const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(Stream.runCollect(stream))
    yield* TestClock.adjust("1 second")
    return Chunk.toReadonlyArray(yield* Fiber.join(fiber))
  })

const jobs: ReadonlyArray<readonly [string, number]> = [
  ["slow", 100],
  ["fast", 10],
  ["medium", 50]
]

describe("Jobs", () => {
  it.effect("ordered (the default): results come in the jobs' order", () =>
    Effect.gen(function* () {
      const out = yield* collect(Stream.fromIterable(jobs).pipe(Jobs.run(timed, { concurrency: 3 })))
      assert.deepStrictEqual(out, ["slow", "fast", "medium"])
    })
  )

  it.effect("unordered: a fast job is emitted before a slow one", () =>
    Effect.gen(function* () {
      const out = yield* collect(Stream.fromIterable(jobs).pipe(Jobs.run(timed, { concurrency: 3, ordered: false })))
      assert.deepStrictEqual(out, ["fast", "medium", "slow"])
    })
  )

  it.effect("at most `concurrency` jobs run at once", () =>
    Effect.gen(function* () {
      const running = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const job = (n: number) =>
        Effect.acquireUseRelease(
          Effect.flatMap(
            Ref.updateAndGet(running, (r) => r + 1),
            (r) => Ref.update(peak, (p) => Math.max(p, r))
          ),
          () => Effect.as(Effect.sleep("10 millis"), n),
          () => Ref.update(running, (r) => r - 1)
        )
      const out = yield* collect(Stream.range(1, 20).pipe(Jobs.run(job, { concurrency: 4 })))
      assert.deepStrictEqual(
        out,
        Array.from({ length: 20 }, (_, i) => i + 1)
      )
      assert.strictEqual(yield* Ref.get(peak), 4)
    })
  )

  it.effect("run: the first failure ends the stream", () =>
    Effect.gen(function* () {
      const job = (n: number) => (n === 3 ? Effect.fail(`job ${n} failed`) : Effect.succeed(n))
      const result = yield* Effect.either(Stream.runCollect(Stream.range(1, 5).pipe(Jobs.run(job, { concurrency: 2 }))))
      assert.deepStrictEqual(result, Either.left("job 3 failed"))
    })
  )

  it.effect("runEither: a failed job is a Left and the stream goes on", () =>
    Effect.gen(function* () {
      const job = (n: number) => (n === 3 ? Effect.fail(`job ${n} failed`) : Effect.succeed(n))
      const out = yield* Stream.runCollect(Stream.range(1, 5).pipe(Jobs.runEither(job, { concurrency: 2 })))
      assert.deepStrictEqual(Chunk.toReadonlyArray(out), [
        Either.right(1),
        Either.right(2),
        Either.left("job 3 failed"),
        Either.right(4),
        Either.right(5)
      ])
    })
  )

  // Every 500th job is slow (20 scheduler yields), so finished jobs pile up behind it (ordered) or overtake it
  // (unordered). The bound does not depend on the count. Stream.mapEffect forks a fiber per job (~0.1-0.4 ms each
  // on a busy 2-core machine): 100,000 jobs took 44 s there and tripped vitest's 60 s worker RPC timeout, so the
  // runs are 30,000 (ordered) and 10,000 (unordered, whose merge costs about twice as much per job).
  const constantMemory = (ordered: boolean, total: number) =>
    Effect.gen(function* () {
      const concurrency = 8
      const pending = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const job = (n: number) =>
        Effect.zipRight(
          Effect.flatMap(
            Ref.updateAndGet(pending, (p) => p + 1),
            (p) => Ref.update(peak, (m) => Math.max(m, p))
          ),
          n % 500 === 0 ? Effect.as(Effect.repeatN(Effect.yieldNow(), 20), n) : Effect.succeed(n)
        )
      const count = yield* Stream.range(1, total).pipe(
        Jobs.run(job, { concurrency, ordered }),
        Stream.tap(() => Ref.update(pending, (p) => p - 1)),
        Stream.runCount
      )
      assert.strictEqual(count, total)
      // ordered: `concurrency` running + `concurrency` finished behind a slower one; unordered: + a buffer of 16
      const max = yield* Ref.get(peak)
      assert.isAtLeast(max, ordered ? concurrency : 2)
      assert.isAtMost(max, ordered ? 2 * concurrency + 1 : concurrency + 16 + 1)
    })

  it.effect(
    "constant memory, ordered: 30,000 jobs, never more than a few started but not emitted",
    () => constantMemory(true, 30_000),
    180_000
  )

  it.effect(
    "constant memory, unordered: 10,000 jobs, never more than a few started but not emitted",
    () => constantMemory(false, 10_000),
    180_000
  )
})
