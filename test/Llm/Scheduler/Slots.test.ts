/** Slots under TestClock: priority order, FIFO, aging, capacity, interruption, limits, snapshot. */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Either, Exit, Fiber, Random, Ref, Scope, TestClock } from "effect"
import { QueueFull } from "../../../src/Domain/LlmError.js"
import * as Slots from "../../../src/Llm/Scheduler/Slots.js"
import type { Priority } from "../../../src/Llm/Scheduler/Slots.js"

/** Holds one slot until the returned effect is run. */
const hold = (slots: Slots.Slots, priority: Priority = "normal") =>
  Effect.gen(function* () {
    const gate = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(slots.withSlot(priority, Deferred.await(gate)))
    yield* TestClock.adjust(0)
    return Effect.zipRight(Deferred.succeed(gate, undefined), Fiber.join(fiber))
  })

/** Forks calls that record their name when admitted, in the given arrival order. */
const arrive = (slots: Slots.Slots, order: Ref.Ref<ReadonlyArray<string>>, calls: ReadonlyArray<[Priority, string]>) =>
  Effect.forEach(calls, ([priority, name]) =>
    Effect.tap(
      Effect.fork(
        slots.withSlot(
          priority,
          Ref.update(order, (o) => [...o, name])
        )
      ),
      () => TestClock.adjust(0)
    )
  )

describe("Slots", () => {
  it.effect("admits interactive, then normal, then batch", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const order = yield* Ref.make<ReadonlyArray<string>>([])
      const release = yield* hold(slots)
      const fibers = yield* arrive(slots, order, [
        ["batch", "b"],
        ["normal", "n"],
        ["interactive", "i"]
      ])
      yield* release
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(yield* Ref.get(order), ["i", "n", "b"])
    })
  )

  it.effect("is FIFO within a class", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const order = yield* Ref.make<ReadonlyArray<string>>([])
      const release = yield* hold(slots)
      const names = ["a", "b", "c", "d", "e", "f"]
      const fibers = yield* arrive(
        slots,
        order,
        names.map((n) => ["normal", n])
      )
      yield* release
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(yield* Ref.get(order), names)
    })
  )

  it.effect("aging: a batch waiter goes before interactive arrivals once it aged past them", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1, agingEvery: "2 seconds" })
      const order = yield* Ref.make<ReadonlyArray<string>>([])
      const call = (priority: Priority, name: string) =>
        Effect.fork(
          slots.withSlot(
            priority,
            Effect.zipRight(
              Ref.update(order, (o) => [...o, name]),
              Effect.sleep("3 seconds")
            )
          )
        )
      const release = yield* hold(slots)
      const batch = yield* call("batch", "old batch")
      yield* TestClock.adjust("1 second")
      const i1 = yield* call("interactive", "i1") // the batch call aged to normal only: i1 goes first, until 4 s
      yield* release
      yield* TestClock.adjust("2500 millis")
      const i2 = yield* call("interactive", "i2") // at 4 s the batch call has aged to interactive and is older
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.joinAll([batch, i1, i2])
      assert.deepStrictEqual(yield* Ref.get(order), ["i1", "old batch", "i2"])
    })
  )

  it.effect("aging: a batch call is not starved by a steady stream of interactive calls", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1, agingEvery: "2 seconds" })
      const admitted = yield* Ref.make<number | undefined>(undefined)
      const busy = (priority: Priority) => slots.withSlot(priority, Effect.sleep("1 second"))
      yield* Effect.fork(busy("interactive"))
      yield* TestClock.adjust(0)
      const batch = slots.withSlot(
        "batch",
        Effect.flatMap(TestClock.currentTimeMillis, (t) => Ref.set(admitted, t))
      )
      yield* Effect.fork(batch)
      for (let i = 0; i < 40; i++) {
        yield* Effect.fork(busy("interactive"))
        yield* TestClock.adjust("500 millis")
      }
      const at = yield* Ref.get(admitted)
      assert.isDefined(at)
      assert.isAtMost(at!, 6000)
    })
  )

  it.effect("fails with QueueFull at capacity when wait is false", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1, capacity: 2 })
      yield* hold(slots)
      yield* Effect.fork(slots.withSlot("normal", Effect.void))
      yield* Effect.fork(slots.withSlot("normal", Effect.void))
      yield* TestClock.adjust(0)
      const result = yield* Effect.either(slots.withSlot("interactive", Effect.void, { wait: false }))
      assert.isTrue(Either.isLeft(result))
      const error = (result as Either.Left<QueueFull, void>).left
      assert.instanceOf(error, QueueFull)
      assert.strictEqual(error.capacity, 2)
      assert.isAbove(error.retryAfterMs, 0)
      assert.strictEqual((yield* slots.snapshot).rejected, 1)
    })
  )

  it.effect("wait: true blocks until the line has room", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1, capacity: 1 })
      const release = yield* hold(slots)
      const queued = yield* Effect.fork(slots.withSlot("normal", Effect.succeed("queued")))
      yield* TestClock.adjust(0)
      const blocked = yield* Effect.fork(slots.withSlot("batch", Effect.succeed("blocked"), { wait: true }))
      yield* TestClock.adjust(0)
      const before = yield* slots.snapshot
      assert.deepStrictEqual([before.queued, before.blocked, before.inFlight], [1, 1, 1])
      assert.isUndefined(yield* Fiber.poll(blocked).pipe(Effect.map((o) => (o._tag === "Some" ? o : undefined))))
      yield* release
      assert.strictEqual(yield* Fiber.join(queued), "queued")
      assert.strictEqual(yield* Fiber.join(blocked), "blocked")
      assert.strictEqual((yield* slots.snapshot).rejected, 0)
    })
  )

  it.effect("an interrupted waiter leaves the line at once and the next one gets the slot", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const order = yield* Ref.make<ReadonlyArray<string>>([])
      const release = yield* hold(slots)
      const [first, second] = yield* arrive(slots, order, [
        ["interactive", "first"],
        ["normal", "second"]
      ])
      assert.strictEqual((yield* slots.snapshot).queued, 2)
      yield* Fiber.interrupt(first!)
      assert.strictEqual((yield* slots.snapshot).queued, 1)
      yield* release
      yield* Fiber.join(second!)
      assert.deepStrictEqual(yield* Ref.get(order), ["second"])
      assert.strictEqual((yield* slots.snapshot).inFlight, 0)
    })
  )

  it.effect("a waiter interrupted just as it is granted gives the permit back", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const scope = yield* Scope.make()
      yield* Scope.extend(slots.acquire("normal"), scope)
      const waiter = yield* Effect.fork(Effect.scoped(slots.acquire("interactive")))
      yield* TestClock.adjust(0)
      yield* Scope.close(scope, Exit.void) // grants the waiter...
      yield* Fiber.interrupt(waiter) // ...which is interrupted before it ran
      const after = yield* slots.snapshot
      assert.deepStrictEqual([after.inFlight, after.queued], [0, 0])
      assert.strictEqual(yield* slots.withSlot("batch", Effect.succeed(1), { wait: false }), 1)
    })
  )

  it.effect("no permit leaks when waiters and holders are interrupted at random", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 3, capacity: 50 })
      const fibers = yield* Effect.forEach(Array.from({ length: 200 }), (_, i) =>
        Effect.fork(slots.withSlot(Slots.priorities[i % 3]!, Effect.sleep(`${(i % 7) * 10} millis`)))
      )
      for (const fiber of fibers) {
        const at = yield* Random.nextIntBetween(0, 400)
        if (yield* Random.nextBoolean) yield* Effect.fork(Effect.zipRight(Effect.sleep(at), Fiber.interrupt(fiber)))
      }
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.awaitAll(fibers)
      const after = yield* slots.snapshot
      assert.deepStrictEqual([after.inFlight, after.queued, after.blocked], [0, 0, 0])
      const releases = yield* Effect.all([hold(slots), hold(slots), hold(slots)])
      assert.deepStrictEqual([(yield* slots.snapshot).inFlight, (yield* slots.snapshot).queued], [3, 0])
      yield* Effect.all(releases)
    }).pipe(Effect.withRandom(Random.make("slots")))
  )

  it.effect("never runs more than the limit under 200 concurrent calls", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 5 })
      const now = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const call = (i: number) =>
        slots.withSlot(
          Slots.priorities[i % 3]!,
          Effect.acquireUseRelease(
            Effect.flatMap(
              Ref.updateAndGet(now, (n) => n + 1),
              (n) => Ref.update(peak, (p) => Math.max(p, n))
            ),
            () => Effect.sleep(`${1 + (i % 13)} millis`),
            () => Ref.update(now, (n) => n - 1)
          )
        )
      const all = yield* Effect.fork(
        Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          call,
          { concurrency: "unbounded" }
        )
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(all)
      assert.strictEqual(yield* Ref.get(peak), 5)
      assert.strictEqual((yield* slots.snapshot).inFlight, 0)
    })
  )

  it.effect("snapshot: limit, in flight, classes, positions and waits", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const order = yield* Ref.make<ReadonlyArray<string>>([])
      yield* hold(slots)
      yield* arrive(slots, order, [
        ["batch", "b1"],
        ["normal", "n1"],
        ["interactive", "i1"],
        ["batch", "b2"]
      ])
      yield* TestClock.adjust("1 second")
      const snap = yield* slots.snapshot
      assert.strictEqual(snap.limit, 1)
      assert.strictEqual(snap.inFlight, 1)
      assert.strictEqual(snap.queued, 4)
      assert.deepStrictEqual(snap.byPriority, { interactive: 1, normal: 1, batch: 2 })
      assert.strictEqual(snap.oldestWaitMs, 1000)
      assert.deepStrictEqual(
        snap.waiters.map((w) => [w.priority, w.position, w.waitedMs]),
        [
          ["interactive", 0, 1000],
          ["normal", 1, 1000],
          ["batch", 2, 1000],
          ["batch", 3, 1000]
        ]
      )
    })
  )

  it.effect("an adaptive limit that grows admits waiters at once", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: "adaptive", adaptive: { initial: 1, window: 1, probeEvery: 0 } })
      const first = yield* Effect.fork(slots.withSlot("normal", Effect.sleep("100 millis")))
      yield* TestClock.adjust(0)
      const releases = yield* Effect.all([hold(slots), hold(slots)])
      assert.strictEqual((yield* slots.snapshot).queued, 2)
      yield* TestClock.adjust("100 millis") // one window, fully used, at the baseline: the limit grows to 2
      yield* Fiber.join(first)
      const grown = yield* slots.snapshot
      assert.deepStrictEqual([grown.limit, grown.inFlight, grown.queued], [2, 2, 0])
      yield* Effect.all(releases)
    })
  )

  it.effect("an adaptive limit that shrinks cuts no call; admissions wait until inFlight < limit", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: "adaptive", adaptive: { initial: 4, probeEvery: 0 } })
      const scopes = yield* Effect.forEach([1, 2, 3, 4], () => Scope.make())
      const held = yield* Effect.forEach(scopes, (scope) => Scope.extend(slots.acquire("normal"), scope))
      yield* held[0]!.done("overload")
      const shrunk = yield* slots.snapshot
      assert.deepStrictEqual([shrunk.limit, shrunk.inFlight], [2, 4])
      const late = yield* Effect.fork(slots.withSlot("interactive", Effect.succeed("late")))
      yield* TestClock.adjust(0)
      for (const scope of scopes.slice(0, 2)) yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual([(yield* slots.snapshot).inFlight, (yield* slots.snapshot).queued], [2, 1])
      yield* Scope.close(scopes[2]!, Exit.void)
      assert.strictEqual(yield* Fiber.join(late), "late")
      yield* Scope.close(scopes[3]!, Exit.void)
      assert.strictEqual((yield* slots.snapshot).inFlight, 0)
    })
  )
})
