/** BatchProcessor: size, window, priorities, capacity, failures, concurrency, interruption and shutdown. */
import { assert, describe, it } from "@effect/vitest"
import { Data, Duration, Effect, Either, Exit, Fiber, Option, Ref, Scope, TestClock } from "effect"
import * as BatchProcessor from "../../src/Llm/BatchProcessor.js"

class Boom extends Data.TaggedError("Boom")<{ readonly reason: string }> {}

/** A `process` that records each batch, takes `latency`, and answers item * 10. */
const recorder = (latency: Duration.DurationInput = "0 millis") =>
  Effect.gen(function* () {
    const batches = yield* Ref.make<ReadonlyArray<ReadonlyArray<string>>>([])
    const process = (items: ReadonlyArray<string>) =>
      Effect.zipRight(
        Ref.update(batches, (bs) => [...bs, items]),
        Effect.as(
          Effect.sleep(latency),
          items.map((item) => `${item}!`)
        )
      )
    return { batches, process }
  })

const base = { batchSize: 3, window: "100 millis", capacity: 100 } as const

describe("BatchProcessor", () => {
  it.scoped("a batch goes out as soon as it is full", () =>
    Effect.gen(function* () {
      const rec = yield* recorder()
      const processor = yield* BatchProcessor.make({ ...base, process: rec.process })
      const fiber = yield* Effect.fork(processor.submitAll(["a", "b", "c", "d", "e", "f"]))
      yield* TestClock.adjust("0 millis")
      assert.deepStrictEqual(yield* Ref.get(rec.batches), [
        ["a", "b", "c"],
        ["d", "e", "f"]
      ])
      assert.deepStrictEqual(yield* Fiber.join(fiber), ["a!", "b!", "c!", "d!", "e!", "f!"])
      assert.deepStrictEqual(yield* processor.stats, { queued: 0, batches: 2, processed: 6, rejected: 0 })
    })
  )

  it.scoped("a partial batch goes out when its oldest item has waited the window", () =>
    Effect.gen(function* () {
      const rec = yield* recorder()
      const processor = yield* BatchProcessor.make({ ...base, process: rec.process })
      const first = yield* Effect.fork(processor.submit("a"))
      yield* TestClock.adjust("60 millis")
      const second = yield* Effect.fork(processor.submit("b"))
      yield* TestClock.adjust("39 millis")
      assert.deepStrictEqual(yield* Ref.get(rec.batches), [])
      assert.strictEqual((yield* processor.stats).queued, 2)
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Ref.get(rec.batches), [["a", "b"]])
      assert.strictEqual(yield* Fiber.join(first), "a!")
      assert.strictEqual(yield* Fiber.join(second), "b!")
    })
  )

  it.scoped("higher priorities are taken first, FIFO within a class", () =>
    Effect.gen(function* () {
      const rec = yield* recorder()
      const processor = yield* BatchProcessor.make({ ...base, process: rec.process })
      const submits: ReadonlyArray<[string, BatchProcessor.Priority]> = [
        ["b1", "batch"],
        ["b2", "batch"],
        ["n1", "normal"],
        ["i1", "interactive"],
        ["b3", "batch"],
        ["n2", "normal"]
      ]
      const fibers = yield* Effect.forEach(submits, ([item, priority]) => Effect.fork(processor.submit(item, priority)))
      yield* TestClock.adjust("0 millis")
      assert.deepStrictEqual(yield* Ref.get(rec.batches), [
        ["i1", "n1", "n2"],
        ["b1", "b2", "b3"]
      ])
      assert.deepStrictEqual(yield* Effect.forEach(fibers, Fiber.join), ["b1!", "b2!", "n1!", "i1!", "b3!", "n2!"])
    })
  )

  it.scoped("while the worker is busy, a later urgent item overtakes queued ones", () =>
    Effect.gen(function* () {
      const rec = yield* recorder("50 millis")
      const processor = yield* BatchProcessor.make({ ...base, batchSize: 1, process: rec.process })
      yield* Effect.fork(processor.submit("first"))
      yield* TestClock.adjust("0 millis")
      yield* Effect.fork(processor.submit("b", "batch"))
      yield* Effect.fork(processor.submit("i", "interactive"))
      yield* TestClock.adjust("150 millis")
      assert.deepStrictEqual(yield* Ref.get(rec.batches), [["first"], ["i"], ["b"]])
    })
  )

  it.scoped("when full, overflow reject fails with QueueFull", () =>
    Effect.gen(function* () {
      const rec = yield* recorder()
      const processor = yield* BatchProcessor.make({
        ...base,
        batchSize: 10,
        capacity: 2,
        overflow: "reject",
        process: rec.process
      })
      yield* Effect.fork(processor.submitAll(["a", "b"]))
      yield* TestClock.adjust("0 millis")
      const refused = yield* Effect.either(processor.submit("c"))
      assert.isTrue(Either.isLeft(refused) && refused.left._tag === "QueueFull")
      assert.deepStrictEqual(yield* processor.stats, { queued: 2, batches: 0, processed: 0, rejected: 1 })
    })
  )

  it.scoped("when full, overflow backpressure makes submit wait for room", () =>
    Effect.gen(function* () {
      const rec = yield* recorder()
      const processor = yield* BatchProcessor.make({ ...base, batchSize: 10, capacity: 2, process: rec.process })
      yield* Effect.fork(processor.submitAll(["a", "b"]))
      yield* TestClock.adjust("0 millis")
      const waiting = yield* Effect.fork(processor.submit("c"))
      yield* TestClock.adjust("99 millis")
      assert.isNull(waiting.unsafePoll())
      assert.strictEqual((yield* processor.stats).queued, 2)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(waiting), "c!")
      // "c" waited for room since t=0, so it went out right after the first batch
      assert.deepStrictEqual(yield* Ref.get(rec.batches), [["a", "b"], ["c"]])
    })
  )

  it.scoped("a failed process fails every member of its batch", () =>
    Effect.gen(function* () {
      const processor = yield* BatchProcessor.make({
        ...base,
        process: (_: ReadonlyArray<string>) => Effect.fail(new Boom({ reason: "down" }))
      })
      const results = yield* Effect.fork(
        Effect.forEach(["a", "b", "c"], (item) => Effect.either(processor.submit(item)), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("0 millis")
      for (const result of yield* Fiber.join(results)) {
        assert.isTrue(Either.isLeft(result) && result.left._tag === "Boom")
      }
    })
  )

  it.scoped("a result array of the wrong length fails the batch with BatchMismatch", () =>
    Effect.gen(function* () {
      const processor = yield* BatchProcessor.make({
        ...base,
        process: (items: ReadonlyArray<string>) => Effect.succeed(items.slice(1))
      })
      const results = yield* Effect.fork(
        Effect.forEach(["a", "b", "c"], (item) => Effect.either(processor.submit(item)), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("0 millis")
      for (const result of yield* Fiber.join(results)) {
        const error = Either.getLeft(result).pipe(Option.getOrThrow)
        assert.isTrue(error instanceof BatchProcessor.BatchMismatch && error.expected === 3 && error.actual === 2)
      }
    })
  )

  it.scoped("at most `concurrency` batches run at once", () =>
    Effect.gen(function* () {
      const running = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const process = (items: ReadonlyArray<number>) =>
        Effect.acquireUseRelease(
          Effect.flatMap(
            Ref.updateAndGet(running, (n) => n + 1),
            (n) => Ref.update(peak, (p) => Math.max(p, n))
          ),
          () => Effect.as(Effect.sleep("100 millis"), items),
          () => Ref.update(running, (n) => n - 1)
        )
      const processor = yield* BatchProcessor.make({ ...base, batchSize: 1, concurrency: 2, process })
      const all = yield* Effect.fork(processor.submitAll([1, 2, 3, 4, 5, 6]))
      yield* TestClock.adjust("100 millis")
      assert.strictEqual((yield* processor.stats).batches, 2)
      yield* TestClock.adjust("200 millis")
      assert.deepStrictEqual(yield* Fiber.join(all), [1, 2, 3, 4, 5, 6])
      assert.strictEqual(yield* Ref.get(peak), 2)
    })
  )

  it.scoped("an interrupted submitter's item is dropped if not yet dispatched", () =>
    Effect.gen(function* () {
      const rec = yield* recorder()
      const processor = yield* BatchProcessor.make({ ...base, process: rec.process })
      const a = yield* Effect.fork(processor.submit("a"))
      const b = yield* Effect.fork(processor.submit("b"))
      yield* TestClock.adjust("50 millis")
      yield* Fiber.interrupt(b)
      assert.strictEqual((yield* processor.stats).queued, 1)
      yield* TestClock.adjust("50 millis")
      assert.strictEqual(yield* Fiber.join(a), "a!")
      assert.deepStrictEqual(yield* Ref.get(rec.batches), [["a"]])
    })
  )

  it.effect("closing the scope interrupts queued, waiting and in-flight submitters and refuses new ones", () =>
    Effect.gen(function* () {
      const rec = yield* recorder("1 second")
      const scope = yield* Scope.make()
      const processor = yield* Scope.extend(
        BatchProcessor.make({ ...base, batchSize: 1, capacity: 1, process: rec.process }),
        scope
      )
      const inFlight = yield* Effect.fork(processor.submit("a"))
      yield* TestClock.adjust("0 millis")
      const queued = yield* Effect.fork(processor.submit("b"))
      yield* TestClock.adjust("0 millis")
      const waiting = yield* Effect.fork(processor.submit("c"))
      yield* TestClock.adjust("0 millis")
      assert.deepStrictEqual(yield* Ref.get(rec.batches), [["a"]])
      yield* Scope.close(scope, Exit.void)
      for (const fiber of [inFlight, queued, waiting]) {
        assert.isTrue(Exit.isInterrupted(yield* Fiber.await(fiber)))
      }
      assert.isTrue(Exit.isInterrupted(yield* Effect.exit(processor.submit("d"))))
    })
  )
})
