/** The bus's hubs (one per topic, in an Llm/Keyed.ts registry): made by the first subscriber, gone with the last. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Queue, Schema } from "effect"
import { EventBus } from "../../src/Agent/EventBus.js"
import type { Event } from "../../src/Agent/EventBusTopic.js"
import { topic } from "../../src/Agent/EventBusTopic.js"
import * as Store from "../../src/Store/Store.js"

const Tick = topic("ticks", Schema.Struct({ n: Schema.Int }))
const Tock = topic("tocks", Schema.Struct({ n: Schema.Int }))

const busLayer = EventBus.layer({ hubCapacity: 1 }).pipe(Layer.provideMerge(Store.layerMemory))

const collector = Effect.map(Queue.unbounded<number>(), (seen) => ({
  seen,
  handler: (event: Event<{ readonly n: number }>) => Queue.offer(seen, event.payload.n)
}))

const topicsOf = (bus: EventBus) => Effect.map(bus.stats, (s) => s.topics)

describe("EventBus hubs", () => {
  it.scoped("a topic has a hub while it has subscribers; a later subscriber gets a new one and only later events", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      assert.deepStrictEqual(yield* topicsOf(bus), [])
      const first = yield* collector
      const second = yield* collector
      const a = yield* bus.subscribe(Tick, first.handler, { name: "a" })
      const b = yield* bus.subscribe(Tick, second.handler, { name: "b" })
      const c = yield* bus.subscribe(Tock, first.handler, { name: "c" })
      assert.deepStrictEqual(yield* topicsOf(bus), ["ticks", "tocks"])
      yield* a.unsubscribe
      assert.deepStrictEqual(yield* topicsOf(bus), ["ticks", "tocks"])
      yield* b.unsubscribe
      yield* c.unsubscribe
      assert.deepStrictEqual(yield* topicsOf(bus), [])
      yield* bus.publish(Tick, { n: 1 })
      assert.deepStrictEqual(yield* topicsOf(bus), [])
      const later = yield* collector
      yield* bus.subscribe(Tick, later.handler, { name: "later" })
      yield* bus.publish(Tick, { n: 2 })
      assert.deepStrictEqual([...(yield* Queue.takeN(later.seen, 1))], [2])
      assert.deepStrictEqual(yield* topicsOf(bus), ["ticks"])
    }).pipe(Effect.provide(busLayer))
  )

  it.scoped("a publisher waiting on a full hub when the last subscriber leaves is let through, not cut off", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      const stuck = yield* bus.subscribe(Tick, () => Effect.never, { name: "stuck", mailbox: 1 })
      const publisher = yield* Effect.fork(
        Effect.forEach([1, 2, 3, 4, 5], (n) => bus.publish(Tick, { n }), { discard: true })
      )
      yield* Effect.repeat(
        Effect.map(bus.stats, (s) => s.published),
        { until: (n) => n >= 3, times: 10_000 }
      )
      yield* stuck.unsubscribe
      yield* Fiber.join(publisher)
      assert.strictEqual((yield* bus.stats).published, 5)
      assert.deepStrictEqual(yield* topicsOf(bus), [])
    }).pipe(Effect.provide(busLayer))
  )
})
