import { Command } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Episodes } from "../../src/Agent/Episodes.js"
import { archive } from "../../src/Cli/Archive.js"
import * as Store from "../../src/Store/Store.js"
import { files, tempDir, tick } from "./episodesFixtures.js"

const DAY = 24 * 60 * 60 * 1000
const NOW = Date.parse("2025-06-01T00:00:00Z")

/** Runs `sluice ...args` in-process, `archive` mounted as in main.ts; resolves with what it printed. */
const cli = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const console = yield* Effect.console
    const capture = {
      ...console,
      log: (...parts: ReadonlyArray<unknown>) => Effect.sync(() => void lines.push(parts.join(" ")))
    }
    const sluice = Command.make("sluice").pipe(Command.withSubcommands([archive]))
    const run = Command.run(sluice, { name: "sluice", version: "0.0.0" })
    yield* run(["node", "sluice", ...args]).pipe(Effect.withConsole(capture), Effect.provide(NodeContext.layer))
    return lines.join("\n")
  })

/** A database in `dataDir` with an episode ended 40 days before NOW and one ended yesterday. */
const seed = (dataDir: string) =>
  Effect.gen(function* () {
    const episodes = yield* Episodes
    for (const [id, at] of [
      ["old-1", NOW - 40 * DAY],
      ["new-1", NOW - DAY]
    ] as const) {
      yield* TestClock.setTime(at)
      yield* episodes.start({ agent: "scout", goal: "g", spec: {}, id })
      yield* episodes.commitTick(tick(id, 1))
      yield* episodes.finish(id, { status: "completed" })
    }
    yield* TestClock.setTime(NOW)
  }).pipe(Effect.provide(Episodes.Default.pipe(Layer.provide(Store.layerSqlite({ dataDir })))))

const rows = (dataDir: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`SELECT * FROM episodes ORDER BY id`,
      sql`SELECT * FROM ticks ORDER BY episode_id, n`,
      sql`SELECT * FROM archive_index`
    ])
  ).pipe(Effect.provide(Store.layerSqlite({ dataDir })))

describe("sluice archive", () => {
  it.effect(
    "--dry-run prints what would move and changes nothing; then a run moves it and --restore brings it back",
    () =>
      Effect.gen(function* () {
        const dataDir = join(tempDir(), "data")
        yield* seed(dataDir)
        const before = yield* rows(dataDir)
        const database = readFileSync(Store.databaseFile(dataDir))
        const disk = Object.keys(files(dataDir))

        const dry = yield* cli(["archive", "--data-dir", dataDir, "--dry-run"])
        assert.include(dry, "1 episode(s) would be archived")
        assert.match(dry, /EPISODE\s+AGENT\s+STATUS\s+TICKS\s+UPDATED\s+FILE/)
        assert.match(dry, /old-1\s+scout\s+completed\s+1\s+2025-04-22T00:00:00.000Z\s+archive\/old-1.jsonl.gz/)
        assert.notInclude(dry, "new-1")
        assert.deepStrictEqual(yield* rows(dataDir), before)
        assert.deepStrictEqual(readFileSync(Store.databaseFile(dataDir)), database)
        assert.deepStrictEqual(Object.keys(files(dataDir)), disk)

        const moved = yield* cli(["archive", "--data-dir", dataDir, "--older-than", "30"])
        assert.include(moved, "1 episode(s) archived")
        assert.isTrue(existsSync(join(dataDir, "archive/old-1.jsonl.gz")))
        const [episodes, , index] = yield* rows(dataDir)
        assert.deepStrictEqual([episodes.map((e) => e.id), index.map((e) => e.episode_id)], [["new-1"], ["old-1"]])

        const restored = yield* cli(["archive", "--data-dir", dataDir, "--restore", "old-1"])
        assert.include(restored, "restored old-1 (scout, completed, 1 ticks)")
        assert.deepStrictEqual(yield* rows(dataDir), before)
      })
  )

  it.effect("--keep-per-agent archives beyond the newest N; a missing database is not created", () =>
    Effect.gen(function* () {
      const dataDir = join(tempDir(), "data")
      const none = yield* cli(["archive", "--data-dir", dataDir, "--dry-run"])
      assert.include(none, "no database at")
      assert.isFalse(existsSync(dataDir))
      yield* seed(dataDir)
      const out = yield* cli([
        "archive",
        "--data-dir",
        dataDir,
        "--older-than",
        "365",
        "--keep-per-agent",
        "1",
        "--dry-run"
      ])
      assert.include(out, "older than 365 days or beyond 1 per agent")
      assert.match(out, /old-1/)
      assert.notInclude(out, "new-1")
    })
  )
})
