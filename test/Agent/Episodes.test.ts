import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
import { Episodes } from "../../src/Agent/Episodes.js"
import { eachStore, freshStore } from "../support/Stores.js"
import { layerOn, snapshot, tempDir, tick, withoutBudget } from "./episodesFixtures.js"

const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, layerOn({ dataDir: tempDir() }, freshStore))

eachStore("Episodes", (it) => {
  it.effect("starts an episode, commits ticks in order and finishes it", () =>
    provide(
      Effect.gen(function* () {
        const episodes = yield* Episodes
        yield* TestClock.setTime(5_000)
        const started = yield* episodes.start({ agent: "scout", goal: "find rain", spec: { model: "m" }, id: "ep-1" })
        assert.deepStrictEqual(
          { status: started.status, ticks: started.ticks, createdAt: started.createdAt },
          { status: "running", ticks: 0, createdAt: 5_000 }
        )
        assert.isTrue(Option.isNone(yield* episodes.lastTick("ep-1")))
        yield* TestClock.adjust("1 second")
        const one = yield* episodes.commitTick(tick("ep-1", 1))
        assert.deepStrictEqual(
          { ticks: one.ticks, tokens: one.tokens, updatedAt: one.updatedAt },
          {
            ticks: 1,
            tokens: 10,
            updatedAt: 6_000
          }
        )
        const two = withoutBudget(tick("ep-1", 2, { outcome: "budget-exceeded", error: "calls" }))
        yield* episodes.commitTick(two)
        assert.deepStrictEqual(yield* episodes.lastTick("ep-1"), Option.some(2))
        const done = yield* episodes.finish("ep-1", { status: "completed", result: "it rains" })
        assert.deepStrictEqual(
          { status: done.status, endedAt: done.endedAt, result: done.result },
          {
            status: "completed",
            endedAt: 6_000,
            result: "it rains"
          }
        )
        const detail = Option.getOrThrow(yield* episodes.get("ep-1"))
        assert.deepStrictEqual(detail.episode, done)
        assert.deepStrictEqual(detail.ticks, [tick("ep-1", 1), two])
        assert.strictEqual(detail.episode.tokens, 30)
      })
    )
  )

  it.effect("can end the episode in the transaction of its last tick", () =>
    provide(
      Effect.gen(function* () {
        const episodes = yield* Episodes
        yield* episodes.start({ agent: "a", goal: "g", spec: {}, id: "ep" })
        const ended = yield* episodes.commitTick(tick("ep", 1), { status: "failed", error: "tool broke" })
        assert.deepStrictEqual(
          { status: ended.status, ticks: ended.ticks, error: ended.error },
          {
            status: "failed",
            ticks: 1,
            error: "tool broke"
          }
        )
        const refused = yield* Effect.flip(episodes.commitTick(tick("ep", 2)))
        assert.strictEqual(refused._tag, "EpisodeNotRunning")
      })
    )
  )

  it.effect("refuses a duplicate or skipped tick number and leaves the episode unchanged", () =>
    provide(
      Effect.gen(function* () {
        const episodes = yield* Episodes
        yield* episodes.start({ agent: "a", goal: "g", spec: {}, id: "ep" })
        yield* episodes.commitTick(tick("ep", 1))
        const before = yield* snapshot
        const duplicate = yield* Effect.flip(episodes.commitTick(tick("ep", 1)))
        assert.deepStrictEqual(duplicate._tag === "TickOutOfOrder" && [duplicate.expected, duplicate.got], [2, 1])
        const skipped = yield* Effect.flip(episodes.commitTick(tick("ep", 3)))
        assert.strictEqual(skipped._tag, "TickOutOfOrder")
        assert.deepStrictEqual(yield* snapshot, before)
        const missing = yield* Effect.flip(episodes.commitTick(tick("nope", 1)))
        assert.strictEqual(missing._tag, "EpisodeNotFound")
      })
    )
  )

  it.effect("commitTick is atomic: when the tick row cannot be written the episode update is rolled back", () =>
    provide(
      Effect.gen(function* () {
        const episodes = yield* Episodes
        const sql = yield* SqlClient.SqlClient
        yield* episodes.start({ agent: "a", goal: "g", spec: {}, id: "ep" })
        // A stray tick 1 (as a crash between two writers might leave): the counter update passes, the insert fails.
        yield* sql`INSERT INTO ticks (episode_id, n, started_at, duration_ms, inputs, recalled, messages, tool_calls,
          tokens, budget, outcome, error) VALUES ('ep', 1, 0, 0, 'null', '[]', '[]', '[]', 0, NULL, 'ok', NULL)`
        const before = yield* snapshot
        const failed = yield* Effect.flip(episodes.commitTick(tick("ep", 1), { status: "completed" }))
        assert.strictEqual(failed._tag, "StorageError")
        assert.match(failed.message, /UNIQUE|PRIMARY KEY/i)
        assert.deepStrictEqual(yield* snapshot, before)
        const episode = Option.getOrThrow(yield* episodes.get("ep")).episode
        assert.deepStrictEqual(
          { ticks: episode.ticks, tokens: episode.tokens, status: episode.status },
          {
            ticks: 0,
            tokens: 0,
            status: "running"
          }
        )
      })
    )
  )

  it.effect("resumes a crashed or interrupted episode after its last committed tick", () =>
    provide(
      Effect.gen(function* () {
        const episodes = yield* Episodes
        yield* episodes.start({ agent: "a", goal: "g", spec: {}, id: "ep" })
        yield* episodes.commitTick(tick("ep", 1))
        yield* episodes.finish("ep", { status: "interrupted" })
        const resumed = yield* episodes.resume("ep")
        assert.deepStrictEqual(
          { status: resumed.status, ticks: resumed.ticks, endedAt: resumed.endedAt },
          {
            status: "running",
            ticks: 1,
            endedAt: undefined
          }
        )
        yield* episodes.commitTick(tick("ep", 2))
        yield* episodes.finish("ep", { status: "completed" })
        const refused = yield* Effect.flip(episodes.resume("ep"))
        assert.deepStrictEqual(refused._tag === "EpisodeNotRunning" && refused.status, "completed")
      })
    )
  )

  it.effect("lists by agent, status and creation time, newest first", () =>
    provide(
      Effect.gen(function* () {
        const episodes = yield* Episodes
        const make = (id: string, agent: string, at: number) =>
          Effect.zipRight(TestClock.setTime(at), episodes.start({ agent, goal: "g", spec: {}, id }))
        yield* make("a1", "alpha", 1_000)
        yield* make("b1", "beta", 2_000)
        yield* make("a2", "alpha", 3_000)
        yield* make("a3", "alpha", 4_000)
        yield* episodes.finish("a2", { status: "completed" })
        const ids = (query: Parameters<typeof episodes.list>[0]) =>
          Effect.map(episodes.list(query), (list) => list.map((e) => e.id))
        assert.deepStrictEqual(yield* ids({}), ["a3", "a2", "b1", "a1"])
        assert.deepStrictEqual(yield* ids({ agent: "alpha" }), ["a3", "a2", "a1"])
        assert.deepStrictEqual(yield* ids({ agent: "alpha", status: "running" }), ["a3", "a1"])
        assert.deepStrictEqual(yield* ids({ status: "completed" }), ["a2"])
        assert.deepStrictEqual(yield* ids({ agent: "alpha", since: 2_000, until: 4_000 }), ["a2"])
        assert.deepStrictEqual(yield* ids({ limit: 2 }), ["a3", "a2"])
        assert.isTrue(Option.isNone(yield* episodes.get("missing")))
      })
    )
  )
})
