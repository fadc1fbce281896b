import { SqlClient } from "@effect/sql"
import type { Fragment } from "@effect/sql/Statement"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema, TestClock } from "effect"
import type { Options } from "../../src/Agent/EventBus.js"
import { EventBus } from "../../src/Agent/EventBus.js"
import { topic } from "../../src/Agent/EventBusTopic.js"
import { queries } from "../../src/Store/EventsRepo.js"
import * as Store from "../../src/Store/Store.js"
import { eachStore, freshStore } from "../support/Stores.js"

const Note = topic("notes", Schema.Struct({ text: Schema.String, at: Schema.DateFromNumber }))
const Other = topic("other", Schema.Struct({ n: Schema.Number }))

const busLayer = (options?: Options) =>
  (options === undefined ? EventBus.Default : EventBus.layer(options)).pipe(Layer.provideMerge(freshStore))

const note = (text: string) => ({ text, at: new Date(0) })

/** The plan's lines for a statement, e.g. "SEARCH events USING INDEX events_topic_at (topic=? AND at>? AND at<?)". */
const plan = (statement: Fragment) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ detail: string }>`EXPLAIN QUERY PLAN ${statement}`, (rows) => rows.map((r) => r.detail))
  )

const assertIndexed = (lines: ReadonlyArray<string>, table: string, index: string) => {
  assert.isTrue(
    lines.some((l) => new RegExp(`^SEARCH ${table} USING (COVERING )?INDEX ${index}\\b`).test(l)),
    lines.join("\n")
  )
  assert.isFalse(
    lines.some((l) => /^SCAN /.test(l) || /TEMP B-TREE/.test(l)),
    lines.join("\n")
  )
}

eachStore("EventBus event log", (it) => {
  it.effect("reads a topic's events back by time range, in publish order, decoded with the topic's schema", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      yield* TestClock.adjust(1_000)
      yield* bus.publish(Note, note("a"))
      yield* bus.publish(Note, note("b"))
      yield* bus.publish(Other, { n: 1 })
      yield* TestClock.adjust(1_000)
      yield* bus.publish(Note, note("c"))
      yield* TestClock.adjust(1_000)
      yield* bus.publish(Note, note("d"))
      const all = yield* bus.events(Note)
      assert.deepStrictEqual(
        all.map((e) => [e.payload.text, e.at]),
        [
          ["a", 1_000],
          ["b", 1_000],
          ["c", 2_000],
          ["d", 3_000]
        ]
      )
      assert.instanceOf(all[0]?.payload.at, Date)
      const middle = yield* bus.events(Note, { since: 1_500, until: 3_000 })
      assert.deepStrictEqual(
        middle.map((e) => e.payload.text),
        ["c"]
      )
      const first = yield* bus.events(Note, { since: 1_000, limit: 1 })
      assert.deepStrictEqual(
        first.map((e) => e.payload.text),
        ["a"]
      )
      assert.strictEqual((yield* bus.events(Other)).length, 1)
    }).pipe(Effect.provide(busLayer()))
  )

  it.scoped("with persist off, nothing is logged but dead letters are still stored", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus
      yield* bus.subscribe(Other, () => Effect.fail("nope"), { name: "failing" })
      yield* bus.publish(Other, { n: 1 })
      yield* Effect.yieldNow().pipe(
        Effect.zipRight(bus.stats),
        Effect.repeat({ until: (s) => s.deadLetters === 1, times: 10_000 })
      )
      assert.strictEqual((yield* bus.events(Other)).length, 0)
      const [letter] = yield* bus.deadLetters({ topic: "other" })
      assert.deepStrictEqual(JSON.parse(letter!.payload), { n: 1 })
    }).pipe(Effect.provide(busLayer({ persist: false })))
  )
})

describe("EventBus event log on SQLite", () => {
  it.effect("each hot query uses an index (EXPLAIN QUERY PLAN)", () =>
    Effect.gen(function* () {
      const q = queries(yield* SqlClient.SqlClient)
      assertIndexed(yield* plan(q.events({ topic: "t", since: 1, until: 9, limit: 10 })), "events", "events_topic_at")
      assertIndexed(yield* plan(q.events({ topic: "t", limit: 10 })), "events", "events_topic_at")
      const byHandler = "dead_letters_handler_at"
      assertIndexed(yield* plan(q.deadLetters({ handler: "h", limit: 10 })), "dead_letters", byHandler)
      assertIndexed(yield* plan(q.deadLetters({ handler: "h", pending: true, limit: 10 })), "dead_letters", byHandler)
      assertIndexed(yield* plan(q.deadLetters({ topic: "t", limit: 10 })), "dead_letters", "dead_letters_topic_at")
      const all = yield* plan(q.deadLetters({ limit: 10 }))
      assert.isTrue(
        all.some((l) => /^SCAN dead_letters USING (COVERING )?INDEX dead_letters_at\b/.test(l)),
        all.join("\n")
      )
      assert.isTrue((yield* plan(q.deadLetter("x"))).some((l) => /USING INDEX sqlite_autoindex_dead_letters_1/.test(l)))
    }).pipe(Effect.provide(Store.layerMemory))
  )
})
