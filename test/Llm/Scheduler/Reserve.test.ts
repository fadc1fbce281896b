/** Slots.reserve under TestClock: a reservation waits in the line, is claimed once, expires at its deadline. */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Schedule, TestClock } from "effect"
import * as Slots from "../../../src/Llm/Scheduler/Slots.js"

/** Holds one slot until the returned effect is run. */
const hold = (slots: Slots.Slots) =>
  Effect.gen(function* () {
    const gate = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(slots.withSlot("normal", Deferred.await(gate)))
    yield* TestClock.adjust(0)
    return Effect.zipRight(Deferred.succeed(gate, undefined), Fiber.join(fiber))
  })

const inFlight = (slots: Slots.Slots) => Effect.map(slots.snapshot, (s) => s.inFlight)

/** The live clock, counting the sleeps in progress (an interrupted sleep stops counting), for the line's timer. */
const countingClock = () => {
  const base = Clock.make()
  let active = 0
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => base.unsafeCurrentTimeMillis(),
    unsafeCurrentTimeNanos: () => base.unsafeCurrentTimeNanos(),
    currentTimeMillis: base.currentTimeMillis,
    currentTimeNanos: base.currentTimeNanos,
    sleep: (duration) =>
      Effect.acquireUseRelease(
        Effect.sync(() => active++),
        () => base.sleep(duration),
        () => Effect.sync(() => active--)
      )
  }
  return { clock, sleeping: () => active }
}

/** `read()` once it equals `expected`, or its last value after 2 s (fibers settle on their own schedule). */
const settled = (read: () => number, expected: number) =>
  Effect.suspend(() => (read() === expected ? Effect.succeed(expected) : Effect.fail(read()))).pipe(
    Effect.retry({ schedule: Schedule.spaced("5 millis"), times: 400 }),
    Effect.orElseSucceed(read)
  )

describe("Slots.reserve", () => {
  it.effect("a reservation takes a permit once: the call that claims it takes no other", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 2 })
      const reservation = yield* slots.reserve("normal")
      assert.isDefined(reservation)
      assert.strictEqual(yield* inFlight(slots), 1)
      const seen = yield* slots.withSlot("normal", inFlight(slots), { reserved: reservation })
      assert.strictEqual(seen, 1)
      assert.strictEqual(yield* inFlight(slots), 0)
      yield* reservation!.release
      assert.strictEqual(yield* inFlight(slots), 0, "releasing a claimed reservation frees nothing twice")
    })
  )

  it.effect("an unclaimed reservation is given back by release; a foreign or used one is ignored", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const other = yield* Slots.make({ limit: 1 })
      const reservation = yield* slots.reserve("normal")
      const onOther = yield* other.withSlot("normal", inFlight(other), { reserved: reservation })
      assert.strictEqual(onOther, 1, "the other slots took their own permit")
      assert.strictEqual(yield* inFlight(slots), 1, "the reservation is still held")
      yield* reservation!.release
      yield* reservation!.release
      assert.strictEqual(yield* inFlight(slots), 0)
      const again = yield* slots.withSlot("normal", inFlight(slots), { reserved: reservation })
      assert.strictEqual(again, 1, "a released reservation is not reused: the call took a fresh permit")
    })
  )

  it.effect("waits in the priority line like any caller", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const release = yield* hold(slots)
      const batch = yield* Effect.fork(slots.reserve("batch"))
      yield* TestClock.adjust(0)
      const interactive = yield* Effect.fork(slots.reserve("interactive"))
      yield* TestClock.adjust(0)
      assert.strictEqual((yield* slots.snapshot).queued, 2)
      yield* release
      const first = yield* Fiber.join(interactive)
      assert.isDefined(first)
      assert.isNull(batch.unsafePoll(), "the batch reservation still waits")
      yield* first!.release
      const second = yield* Fiber.join(batch)
      assert.isDefined(second)
      yield* second!.release
    })
  )

  it.effect("a full line with wait: false reserves nothing (the call then takes the ordinary path)", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1, capacity: 0 })
      const release = yield* hold(slots)
      assert.isUndefined(yield* slots.reserve("normal", { wait: false }))
      yield* release
    })
  )

  it.effect("the wait ends at its deadline: the waiter leaves the line, and the line's timer stops", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const release = yield* hold(slots)
      const late = yield* Effect.fork(slots.reserve("normal", { deadlineAt: 5_000 }))
      const early = yield* Effect.fork(slots.reserve("normal", { deadlineAt: 2_000 }))
      yield* TestClock.adjust(0)
      assert.strictEqual((yield* slots.snapshot).queued, 2)
      yield* TestClock.adjust(1_999)
      assert.isNull(early.unsafePoll())
      yield* TestClock.adjust(1)
      assert.isUndefined(yield* Fiber.join(early), "expired: no reservation")
      assert.strictEqual((yield* slots.snapshot).queued, 1)
      yield* TestClock.adjust(3_000)
      assert.isUndefined(yield* Fiber.join(late))
      assert.strictEqual((yield* slots.snapshot).queued, 0)
      yield* release
      assert.strictEqual(yield* inFlight(slots), 0)
    })
  )

  it.effect("withReservation gives back an unclaimed reservation when its use ends, and none that a call claimed", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const held = yield* slots.withReservation("normal", {}, (reservation) =>
        Effect.map(inFlight(slots), (n) => [reservation !== undefined, n] as const)
      )
      assert.deepStrictEqual(held, [true, 1])
      assert.strictEqual(yield* inFlight(slots), 0, "unclaimed: given back")
      const failed = yield* Effect.flip(slots.withReservation("normal", {}, () => Effect.fail("boom")))
      assert.strictEqual(failed, "boom")
      assert.strictEqual(yield* inFlight(slots), 0, "given back on failure too")
      const claimed = yield* slots.withReservation("normal", {}, (reservation) =>
        slots.withSlot("normal", inFlight(slots), { reserved: reservation })
      )
      assert.strictEqual(claimed, 1, "the call ran on the reserved permit")
      assert.strictEqual(yield* inFlight(slots), 0)
    })
  )

  it.effect("withSlot with a deadline: a wait that outlives it fails with onExpired and leaves the line", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const release = yield* hold(slots)
      const waiting = yield* Effect.fork(
        slots.withSlot("normal", Effect.succeed("ran"), { deadlineAt: 3_000, onExpired: () => "expired" as const })
      )
      yield* TestClock.adjust(2_999)
      assert.strictEqual((yield* slots.snapshot).queued, 1)
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* Effect.flip(Fiber.join(waiting)), "expired")
      assert.strictEqual((yield* slots.snapshot).queued, 0)
      yield* release
      assert.strictEqual(yield* inFlight(slots), 0)
    })
  )

  it.live("a waiter granted before its deadline keeps its permit, and no timer is left behind", () =>
    Effect.gen(function* () {
      const { clock, sleeping } = countingClock()
      const slots = yield* Slots.make({ limit: 1 })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(slots.withSlot("normal", Deferred.await(gate)))
      yield* Effect.yieldNow()
      const now = yield* Clock.currentTimeMillis
      const waiting = yield* Effect.fork(
        slots.reserve("normal", { deadlineAt: now + 60_000 }).pipe(Effect.withClock(clock))
      )
      assert.strictEqual(yield* settled(sleeping, 1), 1, "the line's timer sleeps until the deadline")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      const reservation = yield* Fiber.join(waiting)
      assert.isDefined(reservation)
      assert.strictEqual(yield* settled(sleeping, 0), 0, "nobody waits with a deadline: the timer stopped")
      yield* reservation!.release
    })
  )

  it.effect("an interrupted reservation leaves the line at once", () =>
    Effect.gen(function* () {
      const slots = yield* Slots.make({ limit: 1 })
      const release = yield* hold(slots)
      const waiting = yield* Effect.fork(slots.reserve("normal", { deadlineAt: 60_000 }))
      yield* TestClock.adjust(0)
      yield* Fiber.interrupt(waiting)
      assert.strictEqual((yield* slots.snapshot).queued, 0)
      yield* release
      assert.strictEqual(yield* inFlight(slots), 0)
    })
  )
})
