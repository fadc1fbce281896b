/**
 * EpisodesRepo on SQLite and on PostgreSQL (test/support/Stores.ts): episodes and ticks round-trip through their
 * codecs (JSON columns, NULLs as absent fields, times past 2^31 ms), the guarded updates (advance, setStatus) hold
 * their guards, list filters and orders, the archive's due query (a window function) picks the same episodes,
 * raw rows copy back identical, and a failed transaction leaves nothing behind.
 */
import { assert } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import type { Episode, Tick } from "../../src/Domain/Episode.js"
import { EpisodesRepo } from "../../src/Store/EpisodesRepo.js"
import { eachStore, freshStore } from "../support/Stores.js"

const repo = EpisodesRepo.Default.pipe(Layer.provide(freshStore))

/** A time past 2^31 ms (2026), which a 32-bit column would not hold. */
const t0 = 1_780_000_000_000

const episode = (id: string, overrides: Partial<Episode> = {}): Episode => ({
  ...{ id, agent: "a", goal: "find the weather", spec: { name: "a", tools: ["search"], nested: { k: [1, 2] } } },
  ...{ status: "running", createdAt: t0, updatedAt: t0, ticks: 0, tokens: 0 },
  ...overrides
})

const tick = (episodeId: string, n: number): Tick => ({
  ...{ episodeId, n, startedAt: t0 + n, durationMs: 250, inputs: [{ topic: "inbox", text: "é ✓" }] },
  ...{ recalled: ["m1"], messages: [{ role: "user", content: `step ${n}` }], tokens: 10 * n, outcome: "ok" },
  toolCalls: [{ name: "search", arguments: { q: "weather" }, result: { temp: 21.5 } }],
  budget: { calls: 1, tokens: 10, elapsedMs: 12.5 }
})

eachStore("EpisodesRepo", (it) => {
  it.effect("episodes and ticks round-trip: JSON, absent fields, 64-bit times", () =>
    Effect.gen(function* () {
      const episodes = yield* EpisodesRepo
      const running = episode("e1")
      yield* episodes.insertEpisode(running)
      assert.deepStrictEqual(yield* episodes.episode("e1"), Option.some(running))
      assert.deepStrictEqual(yield* episodes.episode("none"), Option.none())
      const { budget: _, ...withoutBudget } = tick("e1", 2)
      yield* episodes.insertTick(tick("e1", 1))
      yield* episodes.insertTick(withoutBudget)
      assert.deepStrictEqual(yield* episodes.ticks("e1"), [tick("e1", 1), withoutBudget])
      assert.deepStrictEqual(yield* episodes.lastTick("e1"), Option.some(2))
      assert.deepStrictEqual(yield* episodes.lastTick("none"), Option.none())
      const twice = yield* Effect.flip(episodes.insertTick(tick("e1", 1)))
      assert.strictEqual(twice.operation, "ticks.insert", "one tick per number (the primary key)")
    }).pipe(Effect.provide(repo))
  )

  it.effect("advance and setStatus hold their guards", () =>
    Effect.gen(function* () {
      const episodes = yield* EpisodesRepo
      yield* episodes.insertEpisode(episode("e1"))
      const first = yield* episodes.advance("e1", 1, 7, t0 + 10)
      assert.deepStrictEqual(
        Option.map(first, (e) => [e.ticks, e.tokens, e.updatedAt]),
        Option.some([1, 7, t0 + 10])
      )
      assert.isTrue(Option.isNone(yield* episodes.advance("e1", 1, 7, t0 + 20)), "tick 1 counted once")
      assert.isTrue(Option.isNone(yield* episodes.advance("e1", 3, 7, t0 + 20)), "no gap")
      const ended = yield* episodes.setStatus("e1", ["running"], {
        ...{ status: "completed", now: t0 + 30, endedAt: t0 + 30, result: "sunny" }
      })
      assert.deepStrictEqual(
        Option.map(ended, (e) => [e.status, e.endedAt, e.result, e.error]),
        Option.some(["completed", t0 + 30, "sunny", undefined])
      )
      assert.isTrue(
        Option.isNone(yield* episodes.setStatus("e1", ["running"], { status: "failed", now: 1, endedAt: 1 }))
      )
      assert.isTrue(Option.isNone(yield* episodes.advance("e1", 2, 1, t0 + 40)), "an ended episode does not tick")
    }).pipe(Effect.provide(repo))
  )

  it.effect("list filters by agent, status and time, newest first, limited", () =>
    Effect.gen(function* () {
      const episodes = yield* EpisodesRepo
      for (const [id, agent, status, at] of [
        ["e1", "a", "running", t0],
        ["e2", "a", "completed", t0 + 1],
        ["e3", "b", "running", t0 + 2],
        ["e4", "a", "running", t0 + 3]
      ] as const)
        yield* episodes.insertEpisode(episode(id, { agent, status, createdAt: at, updatedAt: at }))
      const ids = (q: Parameters<typeof episodes.list>[0]) => Effect.map(episodes.list(q), (l) => l.map((e) => e.id))
      assert.deepStrictEqual(yield* ids({}), ["e4", "e3", "e2", "e1"])
      assert.deepStrictEqual(yield* ids({ agent: "a", status: "running" }), ["e4", "e1"])
      assert.deepStrictEqual(yield* ids({ since: t0 + 1, until: t0 + 3 }), ["e3", "e2"])
      assert.deepStrictEqual(yield* ids({ limit: 1 }), ["e4"])
    }).pipe(Effect.provide(repo))
  )

  it.effect("due picks ended episodes older than `before` or beyond the newest N per agent", () =>
    Effect.gen(function* () {
      const episodes = yield* EpisodesRepo
      for (let i = 1; i <= 5; i++) {
        const status = i === 5 ? "running" : "completed"
        yield* episodes.insertEpisode(episode(`a${i}`, { status, updatedAt: t0 + i, ticks: i }))
        yield* episodes.insertEpisode(episode(`b${i}`, { agent: "b", status: "failed", updatedAt: t0 + i }))
      }
      const ids = (p: Parameters<typeof episodes.due>[0]) => Effect.map(episodes.due(p), (l) => l.map((d) => d.id))
      assert.deepStrictEqual(yield* ids({ before: t0 + 3, limit: 10 }), ["a1", "b1", "a2", "b2"])
      assert.deepStrictEqual(yield* ids({ keepPerAgent: 3, limit: 10 }), ["a1", "b1", "b2"])
      assert.deepStrictEqual(yield* ids({ keepPerAgent: 3, limit: 1 }), ["a1"])
      assert.deepStrictEqual(yield* ids({ limit: 10 }), [], "no rule: nothing is due")
      const [due] = yield* episodes.due({ before: t0 + 2, limit: 1 })
      assert.deepStrictEqual(due, { id: "a1", agent: "a", status: "completed", ticks: 1, updated_at: t0 + 1 })
    }).pipe(Effect.provide(repo))
  )

  it.effect("raw rows copy back identical; the archive index round-trips", () =>
    Effect.gen(function* () {
      const episodes = yield* EpisodesRepo
      const ended = episode("e1", { status: "completed", endedAt: t0 + 5, ticks: 60, result: "done" })
      yield* episodes.insertEpisode(ended)
      for (let n = 1; n <= 60; n++) yield* episodes.insertTick(tick("e1", n))
      const row = Option.getOrThrow(yield* episodes.rows.episode("e1"))
      const ticks = yield* episodes.rows.ticks("e1")
      assert.deepStrictEqual(
        [row.created_at, row.ended_at, ticks[0]!.started_at, ticks[0]!.duration_ms],
        [t0, t0 + 5, t0 + 1, 250],
        "BIGINT columns read as numbers on both: archive files do not depend on the database"
      )
      assert.isFalse(yield* episodes.rows.delete("e1", t0 + 1), "changed since it was read: not deleted")
      const gone = yield* episodes.transaction("test.move")(episodes.rows.delete("e1", t0))
      assert.isTrue(gone)
      assert.deepStrictEqual(yield* episodes.episode("e1"), Option.none())
      yield* episodes.rows.insert(row, ticks)
      assert.deepStrictEqual(yield* episodes.rows.episode("e1"), Option.some(row))
      assert.deepStrictEqual(yield* episodes.rows.ticks("e1"), ticks)
      assert.deepStrictEqual(yield* episodes.episode("e1"), Option.some(ended))

      const entry = {
        ...{ episodeId: "e1", agent: "a", status: "archived" as const, finalStatus: "completed" as const },
        ...{ createdAt: t0, updatedAt: t0 + 5, file: "archive/e1.json.gz", sha256: "ab".repeat(32) },
        ...{ bytes: 5_000_000_000, tickCount: 60, archivedAt: t0 + 9 }
      }
      yield* episodes.insertEntry(entry)
      assert.deepStrictEqual(yield* episodes.entry("e1"), Option.some(entry))
      assert.deepStrictEqual(yield* episodes.entries("a", 10), [entry])
      assert.deepStrictEqual(yield* episodes.entries(undefined, 10), [entry])
      yield* episodes.deleteEntry("e1")
      assert.deepStrictEqual(yield* episodes.entries(undefined, 10), [])
    }).pipe(Effect.provide(repo))
  )

  it.effect("a transaction that fails leaves nothing behind", () =>
    Effect.gen(function* () {
      const episodes = yield* EpisodesRepo
      const failed = yield* Effect.flip(
        episodes.transaction("test.fail")(
          Effect.zipRight(episodes.insertEpisode(episode("e1")), Effect.fail("stop" as const))
        )
      )
      assert.strictEqual(failed, "stop")
      assert.deepStrictEqual(yield* episodes.episode("e1"), Option.none())
    }).pipe(Effect.provide(repo))
  )
})
