import { assert } from "@effect/vitest"
import { Effect, Fiber, Option, Stream, TestClock } from "effect"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Archive } from "../../src/Agent/Archive.js"
import { Episodes } from "../../src/Agent/Episodes.js"
import { sha256 } from "../../src/Agent/EpisodesArchiveFile.js"
import { eachStore, freshStore } from "../support/Stores.js"
import { files, layerOn, rowsOf, snapshot, tempDir, tick, withoutBudget } from "./episodesFixtures.js"

const DAY = 24 * 60 * 60 * 1000

/** An ended episode of `agent` with `ticks` ticks, its last update at `at`. */
const ended = (id: string, agent: string, at: number, ticks = 2) =>
  Effect.gen(function* () {
    const episodes = yield* Episodes
    yield* TestClock.setTime(at)
    yield* episodes.start({ agent, goal: `goal of ${id} ✓`, spec: { model: "m", tools: ["search"] }, id })
    for (let n = 1; n <= ticks; n++) {
      yield* episodes.commitTick(
        n === 2 ? withoutBudget(tick(id, n, { outcome: "error", error: "boom" })) : tick(id, n)
      )
    }
    return yield* episodes.finish(id, { status: "completed", result: "done" })
  })

eachStore("Archive", (it) => {
  it.effect("moves old episodes out and restores them with identical rows; the file bytes are stable", () => {
    const dataDir = tempDir()
    return Effect.gen(function* () {
      const archive = yield* Archive
      const episodes = yield* Episodes
      yield* ended("old", "alpha", 0, 3)
      yield* ended("recent", "alpha", 10 * DAY)
      yield* TestClock.setTime(0)
      yield* episodes.start({ agent: "alpha", goal: "still going", spec: {}, id: "live" })
      yield* TestClock.setTime(40 * DAY)
      const before = yield* rowsOf("old")

      const report = yield* archive.archive({ olderThan: "30 days" })
      assert.deepStrictEqual(
        report.moved.map((m) => [m.id, m.file, m.ticks]),
        [["old", "archive/old.jsonl.gz", 3]]
      )
      assert.deepStrictEqual(report.failed, [])
      assert.deepStrictEqual(yield* rowsOf("old"), { episode: [], ticks: [] })
      const entry = Option.getOrThrow(yield* archive.entry("old"))
      const path = join(dataDir, entry.file)
      const bytes = readFileSync(path)
      assert.deepStrictEqual(
        [entry.status, entry.finalStatus, entry.tickCount, entry.archivedAt, entry.sha256],
        ["archived", "completed", 3, 40 * DAY, sha256(bytes)]
      )
      assert.deepStrictEqual(
        (yield* archive.entries({ agent: "alpha" })).map((e) => e.episodeId),
        ["old"]
      )
      assert.deepStrictEqual(
        (yield* episodes.list({ agent: "alpha" })).map((e) => e.id),
        ["recent", "live"]
      )

      const restored = yield* archive.restore("old")
      assert.deepStrictEqual(yield* rowsOf("old"), before)
      assert.deepStrictEqual(Option.getOrThrow(yield* episodes.get("old")).episode, restored)
      assert.isTrue(Option.isNone(yield* archive.entry("old")))
      assert.isFalse(existsSync(path))

      yield* archive.archive({ olderThan: "30 days" })
      assert.deepStrictEqual(readFileSync(path), bytes)
    }).pipe(Effect.provide(layerOn({ dataDir }, freshStore)))
  })

  it.effect("keeps the newest N ended episodes per agent and never archives a running one", () =>
    Effect.gen(function* () {
      const archive = yield* Archive
      const episodes = yield* Episodes
      for (const [i, id] of ["a1", "a2", "a3", "a4"].entries()) yield* ended(id, "alpha", i * 1000, 1)
      yield* ended("b1", "beta", 0, 1)
      yield* episodes.start({ agent: "alpha", goal: "g", spec: {}, id: "a-live" })
      const report = yield* archive.archive({ keepPerAgent: 2 })
      assert.deepStrictEqual(
        report.moved.map((m) => m.id),
        ["a1", "a2"]
      )
      assert.deepStrictEqual((yield* episodes.list({})).map((e) => e.id).sort(), ["a-live", "a3", "a4", "b1"])
      assert.deepStrictEqual((yield* archive.archive({ keepPerAgent: 2 })).moved, [])
    }).pipe(Effect.provide(layerOn({ dataDir: tempDir() }, freshStore)))
  )

  it.effect("a dry run reports what would move and changes no row and no file", () => {
    const dataDir = tempDir()
    return Effect.gen(function* () {
      const archive = yield* Archive
      yield* ended("old", "alpha", 0)
      yield* ended("older", "beta", 0)
      yield* TestClock.setTime(31 * DAY)
      const rows = yield* snapshot
      const disk = files(dataDir)
      const report = yield* archive.archive({ olderThan: "30 days", dryRun: true })
      assert.isTrue(report.dryRun)
      assert.deepStrictEqual(report.moved.map((m) => [m.id, m.file, m.bytes]).sort(), [
        ["old", "archive/old.jsonl.gz", undefined],
        ["older", "archive/older.jsonl.gz", undefined]
      ])
      assert.deepStrictEqual(yield* snapshot, rows)
      assert.deepStrictEqual(files(dataDir), disk)
      assert.isFalse(existsSync(join(dataDir, "archive")))
    }).pipe(Effect.provide(layerOn({ dataDir }, freshStore)))
  })

  it.effect("the default policy (30 days) applies when a run names none", () =>
    Effect.gen(function* () {
      const archive = yield* Archive
      yield* ended("old", "alpha", 0)
      yield* TestClock.setTime(30 * DAY)
      assert.deepStrictEqual((yield* archive.archive()).moved, [])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(
        (yield* archive.archive()).moved.map((m) => m.id),
        ["old"]
      )
    }).pipe(Effect.provide(layerOn({ dataDir: tempDir() }, freshStore)))
  )

  it.effect("the scheduled sweep archives with the default policy", () =>
    Effect.gen(function* () {
      const archive = yield* Archive
      yield* ended("old", "alpha", 0)
      const swept = yield* archive.lastSweep.changes.pipe(
        Stream.filterMap((last) => last),
        Stream.runHead,
        Effect.fork
      )
      yield* TestClock.adjust("2 hours")
      const report = Option.getOrThrow(yield* Fiber.join(swept))
      assert.deepStrictEqual(
        report.moved.map((m) => m.id),
        ["old"]
      )
      assert.isTrue(Option.isSome(yield* archive.entry("old")))
    }).pipe(
      Effect.provide(
        layerOn({ dataDir: tempDir(), policy: { olderThan: "1 hour" }, sweepEvery: "2 hours" }, freshStore)
      )
    )
  )

  it.effect("a failed file write leaves the episode in the hot tables and is reported", () => {
    const blocker = join(tempDir(), "not-a-directory")
    writeFileSync(blocker, "")
    return Effect.gen(function* () {
      const archive = yield* Archive
      yield* ended("old", "alpha", 0)
      const before = yield* snapshot
      yield* TestClock.setTime(31 * DAY)
      const report = yield* archive.archive()
      assert.deepStrictEqual(report.moved, [])
      assert.deepStrictEqual(
        report.failed.map((f) => f.id),
        ["old"]
      )
      assert.deepStrictEqual(yield* snapshot, before)
    }).pipe(Effect.provide(layerOn({ dataDir: join(blocker, "data") }, freshStore)))
  })

  it.effect("restore refuses an unknown episode and a file that does not match its index row", () => {
    const dataDir = tempDir()
    return Effect.gen(function* () {
      const archive = yield* Archive
      const unknown = yield* Effect.flip(archive.restore("nope"))
      assert.deepStrictEqual([unknown._tag, unknown.message], ["EpisodeNotFound", "episode nope is not in the archive"])
      yield* ended("old", "alpha", 0)
      yield* TestClock.setTime(31 * DAY)
      yield* archive.archive()
      const path = join(dataDir, "archive/old.jsonl.gz")
      writeFileSync(path, Buffer.concat([readFileSync(path), Buffer.from([0])]))
      const before = yield* snapshot
      const corrupt = yield* Effect.flip(archive.restore("old"))
      assert.strictEqual(corrupt._tag, "StorageError")
      assert.include(corrupt.message, "checksum mismatch")
      assert.deepStrictEqual(yield* snapshot, before)
    }).pipe(Effect.provide(layerOn({ dataDir }, freshStore)))
  })
})
