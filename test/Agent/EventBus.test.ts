import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Data, Deferred, Effect, Fiber, HashMap, Layer, Logger, Option, Queue, Ref, Schema, TestClock } from "effect"
import type { Options } from "../../src/Agent/EventBus.js"
import { EventBus } from "../../src/Agent/EventBus.js"
import type { Event } from "../../src/Agent/EventBusTopic.js"
import { topic } from "../../src/Agent/EventBusTopic.js"
import * as Store from "../../src/Store/Store.js"

const Tick = topic("ticks", Schema.Struct({ n: Schema.Int }))
type Tick = typeof Tick.schema.Type

class Flaky extends Data.TaggedError("Flaky")<{ readonly n: number }> {}

const busLayer = (options?: Options) =>
  (options === undefined ? EventBus.Default : EventBus.layer(options)).pipe(Layer.provideMerge(Store.layerMemory))

/** Yields until `check` holds (bounded, so a broken bus fails instead of hanging). */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.yieldNow().pipe(
    Effect.zipRight(check),
    Effect.repeat({ until: (ok) => ok, times: 10_000 }),
    Effect.flatMap((ok) => (ok ? Effect.void : Effect.dieMessage("condition never held")))
  )

const settled = (bus: EventBus, handler: string, count: number) =>
  eventually(Effect.map(bus.stats, (s) => (s.delivered[handler] ?? 0) + (s.failures[handler] ?? 0) === count))

const collector = Effect.map(Queue.unbounded<number>(), (seen) => ({
  seen,
  handler: (event: Event<Tick>) => Queue.offer(seen, event.payload.n)
}))

const publishAll = (bus: EventBus, ns: ReadonlyArray<number>) =>
  Effect.forEach(ns, (n) => bus.publish(Tick, { n }), { discard: true })

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe("EventBus", () => {
  it.scoped("delivers typed events in order and rejects an invalid payload with a typed error", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const { seen, handler } = yield* collector
      yield* bus.subscribe(Tick, handler, { name: "reader" })
      const event = yield* bus.publish(Tick, { n: 1 })
      yield* bus.publish(Tick, { n: 2 })
      assert.deepStrictEqual([...(yield* Queue.takeN(seen, 2))], [1, 2])
      assert.strictEqual(event.topic, "ticks")
      const error = yield* Effect.flip(bus.publish(Tick, { n: 1.5 }))
      assert.strictEqual(error._tag, "InvalidPayload")
      if (error._tag === "InvalidPayload") assert.strictEqual(error.topic, "ticks")
      const stats = yield* bus.stats
      assert.strictEqual(stats.published, 2)
      assert.strictEqual(yield* Queue.size(seen), 0)
    }).pipe(Effect.provide(busLayer()))
  )

  it.scoped("isolates failing subscribers: dead letters, counts, and the others get every event", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const { seen, handler } = yield* collector
      yield* TestClock.adjust(1_000)
      yield* bus.subscribe(Tick, handler, { name: "good" })
      yield* bus.subscribe(Tick, (e) => (e.payload.n % 3 === 0 ? new Flaky({ n: e.payload.n }) : Effect.void), {
        name: "flaky"
      })
      yield* bus.subscribe(Tick, (e) => (e.payload.n === 5 ? Effect.die("boom") : Effect.void), { name: "crasher" })
      yield* publishAll(bus, range(1, 10))
      assert.deepStrictEqual([...(yield* Queue.takeN(seen, 10))], range(1, 10))
      yield* settled(bus, "flaky", 10)
      yield* settled(bus, "crasher", 10)
      const stats = yield* bus.stats
      assert.deepStrictEqual(stats.delivered, { good: 10, flaky: 7, crasher: 9 })
      assert.deepStrictEqual(stats.failures, { flaky: 3, crasher: 1 })
      assert.strictEqual(stats.deadLetters, 4)
      const flaky = yield* bus.deadLetters({ handler: "flaky" })
      assert.deepStrictEqual(
        flaky.map((d) => JSON.parse(d.payload).n),
        [3, 6, 9]
      )
      for (const letter of flaky) {
        assert.strictEqual(letter.topic, "ticks")
        assert.strictEqual(letter.at, 1_000)
        assert.strictEqual(letter.replayedAt, null)
        assert.include(letter.cause, "Flaky")
      }
      const [crash] = yield* bus.deadLetters({ handler: "crasher" })
      assert.include(crash?.cause, "boom")
      assert.strictEqual((yield* bus.deadLetters()).length, 4)
    }).pipe(Effect.provide(busLayer()))
  )

  it.scoped("logs a failure with the handler, topic and event id, not the payload", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const logs: Array<{ level: string; text: string; annotations: Record<string, unknown> }> = []
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        logs.push({
          level: logLevel.label,
          text: String(message),
          annotations: Object.fromEntries(HashMap.toEntries(annotations))
        })
      })
      yield* Effect.gen(function* () {
        yield* bus.subscribe(Tick, () => Effect.fail("nope"), { name: "logged" })
        const event = yield* bus.publish(Tick, { n: 424242 })
        yield* settled(bus, "logged", 1)
        const [log] = logs
        assert.strictEqual(log?.level, "WARN")
        assert.deepStrictEqual(log?.annotations, { handler: "logged", topic: "ticks", eventId: event.id })
        assert.notInclude(log?.text, "424242")
      }).pipe(Effect.provide(Logger.add(capture)))
    }).pipe(Effect.provide(busLayer()))
  )

  it.scoped("replays a dead letter to its handler and marks it replayed; a failed replay stays pending", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const broken = yield* Ref.make(true)
      const { seen, handler } = yield* collector
      const run = (e: Event<Tick>) =>
        Effect.flatMap(Ref.get(broken), (b) => (b ? new Flaky({ n: e.payload.n }) : handler(e)))
      const subscription = yield* bus.subscribe(Tick, run, { name: "fixable" })
      yield* publishAll(bus, [1, 2])
      yield* settled(bus, "fixable", 2)
      const [first, second] = yield* bus.deadLetters({ handler: "fixable" })
      assert.strictEqual((yield* Effect.flip(bus.replay(first!.id)))._tag, "ReplayFailed")
      yield* Ref.set(broken, false)
      yield* TestClock.adjust(500)
      yield* bus.replay(first!.id)
      assert.deepStrictEqual([...(yield* Queue.takeAll(seen))], [1])
      const pending = yield* bus.deadLetters({ handler: "fixable", pending: true })
      assert.deepStrictEqual(
        pending.map((d) => d.id),
        [second!.id]
      )
      const [replayed] = yield* bus.deadLetters({ handler: "fixable" })
      assert.strictEqual(replayed?.replayedAt, 500)
      assert.strictEqual((yield* Effect.flip(bus.replay("nope")))._tag, "DeadLetterNotFound")
      yield* subscription.unsubscribe
      assert.strictEqual((yield* Effect.flip(bus.replay(second!.id)))._tag, "HandlerNotSubscribed")
    }).pipe(Effect.provide(busLayer()))
  )

  it.scoped("drop-oldest: a blocked subscriber drops and counts, and the publisher never waits", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const { seen, handler } = yield* collector
      const run = (e: Event<Tick>) =>
        Deferred.succeed(started, undefined).pipe(Effect.zipRight(Deferred.await(gate)), Effect.zipRight(handler(e)))
      const subscription = yield* bus.subscribe(Tick, run, { name: "slow", mailbox: 4, overflow: "drop-oldest" })
      yield* bus.publish(Tick, { n: 1 })
      yield* Deferred.await(started)
      const publisher = yield* Effect.fork(publishAll(bus, range(2, 100)))
      yield* eventually(Effect.map(Fiber.poll(publisher), Option.isSome))
      // the forwarder drains the hub into the 4-slot mailbox: 2..96 are dropped, 97..100 wait
      yield* eventually(Effect.map(bus.stats, (s) => s.dropped.slow === 95))
      assert.strictEqual(yield* subscription.pending, 4)
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual([...(yield* Queue.takeN(seen, 5))], [1, 97, 98, 99, 100])
    }).pipe(Effect.provide(busLayer()))
  )

  it.scoped("backpressure: a full subscriber makes the publisher wait, then every event arrives", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const gate = yield* Deferred.make<void>()
      const { seen, handler } = yield* collector
      const run = (e: Event<Tick>) => Effect.zipRight(Deferred.await(gate), handler(e))
      yield* bus.subscribe(Tick, run, { name: "careful", mailbox: 1 })
      const publisher = yield* Effect.fork(publishAll(bus, range(1, 10)))
      // one event in the handler, one in the mailbox, one held by the forwarder, one in the hub
      yield* eventually(Effect.map(bus.stats, (s) => s.published === 4))
      yield* Effect.yieldNow().pipe(Effect.repeatN(100))
      assert.isTrue(Option.isNone(yield* Fiber.poll(publisher)))
      assert.strictEqual((yield* bus.stats).published, 4)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(publisher)
      assert.deepStrictEqual([...(yield* Queue.takeN(seen, 10))], range(1, 10))
      assert.deepStrictEqual((yield* bus.stats).dropped, {})
    }).pipe(Effect.provide(busLayer({ hubCapacity: 1 })))
  )

  it.scoped("a handler over its timeout is dead-lettered and the subscriber goes on", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const { seen, handler } = yield* collector
      const run = (e: Event<Tick>) => (e.payload.n === 1 ? Effect.never : handler(e))
      yield* bus.subscribe(Tick, run, { name: "stuck", timeout: "1 second" })
      yield* publishAll(bus, [1, 2])
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual([...(yield* Queue.takeN(seen, 1))], [2])
      yield* settled(bus, "stuck", 2)
      const [letter] = yield* bus.deadLetters({ handler: "stuck" })
      assert.include(letter?.cause, "TimeoutException")
    }).pipe(Effect.provide(busLayer()))
  )

  it.scoped("a dead letter that cannot be stored is logged and counted; the subscriber goes on", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const sql = yield* SqlClient.SqlClient
      yield* sql`DROP TABLE dead_letters`
      const { seen, handler } = yield* collector
      yield* bus.subscribe(Tick, (e) => (e.payload.n === 1 ? Effect.die("boom") : handler(e)), { name: "h" })
      yield* publishAll(bus, [1, 2])
      assert.deepStrictEqual([...(yield* Queue.takeN(seen, 1))], [2])
      const stats = yield* bus.stats
      assert.strictEqual(stats.deadLettersLost, 1)
      assert.strictEqual(stats.deadLetters, 0)
    }).pipe(Effect.provide(busLayer()))
  )

  it.scoped("handler names are unique among live subscribers and free again after unsubscribing", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const subscription = yield* bus.subscribe(Tick, () => Effect.void, { name: "only" })
      const taken = yield* Effect.flip(bus.subscribe(Tick, () => Effect.void, { name: "only" }))
      assert.strictEqual(taken._tag, "HandlerNameTaken")
      yield* subscription.unsubscribe
      yield* bus.subscribe(Tick, () => Effect.void, { name: "only" })
    }).pipe(Effect.provide(busLayer()))
  )
})
