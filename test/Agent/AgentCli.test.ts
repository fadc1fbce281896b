import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Episodes } from "../../src/Agent/Episodes.js"
import * as Store from "../../src/Store/Store.js"
import { agentCommand, agentOutput, waitForOutput } from "./agentProcess.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "sluice-agent-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** The episode and its ticks as stored in `dataDir` (the database is closed again afterwards). */
const stored = (dataDir: string, id: string) =>
  Effect.flatMap(Episodes, (episodes) => episodes.get(id)).pipe(
    Effect.map(Option.getOrThrow),
    Effect.provide(Episodes.Default.pipe(Layer.provide(Store.layerSqlite({ dataDir })))),
    Effect.orDie
  )

const started = /episode ([0-9a-f-]{36}) started/

describe("sluice agent", () => {
  it.scopedLive(
    "a run killed with SIGKILL mid-episode resumes after its last committed tick: no tick lost or duplicated",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const spec = join(dir, "slow.json")
        writeFileSync(
          spec,
          JSON.stringify({
            name: "slow",
            model: "llama3.2",
            tools: ["remember"],
            tickInterval: "200 millis",
            maxTicks: 10
          })
        )
        const data = ["--backend", "simulator", "--data-dir", join(dir, "data")]
        const first = yield* agentCommand(["run", spec, "--goal", "remember each tick", ...data])
        const id = yield* waitForOutput(first, started)
        yield* waitForOutput(first, /slow {2}tick 3\/10/)
        first.child.kill("SIGKILL")
        yield* Effect.promise(() => first.exited)

        const before = yield* stored(join(dir, "data"), id)
        assert.strictEqual(before.episode.status, "running", "a killed run leaves the episode running")
        assert.isAtLeast(before.episode.ticks, 3)
        assert.isBelow(before.episode.ticks, 10)

        const resumed = yield* agentOutput(["resume", id, ...data])
        assert.strictEqual(resumed.code, 0, resumed.stderr)
        assert.match(resumed.stdout, /is leased by .+ until .+: waiting for the lease to expire/, "the kill left it")
        assert.include(resumed.stdout, `episode ${id} resumed at tick ${before.episode.ticks + 1}: slow`)
        assert.include(resumed.stdout, `episode ${id} (slow) completed after 10 tick(s)`)

        const after = yield* stored(join(dir, "data"), id)
        assert.strictEqual(after.episode.status, "completed")
        assert.deepStrictEqual(
          after.ticks.map((t) => t.n),
          [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        )
        assert.deepStrictEqual(after.ticks.slice(0, before.ticks.length), before.ticks, "committed ticks are kept")
      }),
    120_000
  )

  it.scopedLive(
    "runs the example specs on the simulator: note-taker finishes, the pair message each other; list and show",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const data = ["--backend", "simulator", "--data-dir", dir]
        const notes = yield* agentOutput(["run", "examples/agents/note-taker.json", ...data])
        assert.strictEqual(notes.code, 0, notes.stderr)
        assert.match(notes.stdout, /note-taker {2}tick 1\/3 {2}tools remember {2}tokens \d+ {2}ok/)
        assert.match(notes.stdout, /note-taker {2}tick 3\/3 {2}tools finish {2}tokens \d+ {2}ok/)
        assert.match(notes.stdout, /\(note-taker\) completed after 3 tick\(s\), \d+ tokens: friday/)
        const id = started.exec(notes.stdout)![1]!

        const pair = yield* agentOutput(["run", "examples/agents/pair-a.json", "examples/agents/pair-b.json", ...data])
        assert.strictEqual(pair.code, 0, pair.stderr)
        assert.match(pair.stdout, /\(pair-a\) completed after 4 tick/)
        assert.match(pair.stdout, /\(pair-b\) completed after 4 tick/)

        const list = yield* agentOutput(["list", "--data-dir", dir])
        assert.match(list.stdout, /^EPISODE\s+AGENT\s+STATUS\s+TICKS\s+TOKENS\s+CREATED\s+RESULT/)
        assert.match(list.stdout, new RegExp(`${id}\\s+note-taker\\s+completed\\s+3\\s`))
        assert.strictEqual(list.stdout.trim().split("\n").length, 4)

        const show = yield* agentOutput(["show", id, "--data-dir", dir])
        assert.include(show.stdout, `episode: ${id}`)
        assert.include(show.stdout, "result:  friday")
        assert.match(show.stdout, /\n3\s+ok\s+finish\s/)
        const asJson = yield* agentOutput(["show", id, "--data-dir", dir, "--json"])
        const parsed = JSON.parse(asJson.stdout) as { ticks: ReadonlyArray<{ n: number }> }
        assert.deepStrictEqual(
          parsed.ticks.map((t) => t.n),
          [1, 2, 3]
        )

        const pairB = /episode ([0-9a-f-]{36}) started: pair-b/.exec(pair.stdout)![1]!
        const b = yield* stored(dir, pairB)
        const inbox = b.ticks.flatMap((t) => t.inputs as ReadonlyArray<{ from: string; text: string }>)
        assert.isAbove(inbox.length, 0)
        assert.deepStrictEqual(inbox[0], { ...inbox[0]!, from: "pair-a", text: "pair-b" })
      }),
    120_000
  )
})
