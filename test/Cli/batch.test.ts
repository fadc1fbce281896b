/** `sluice batch`: 1,000 jobs against the simulator, interrupted with SIGINT halfway, then resumed. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { sluice } from "./process.js"

/** The result lines written so far; a line still being appended (no newline yet) is not counted. */
const results = (file: string) =>
  existsSync(file)
    ? readFileSync(file, "utf8")
        .replace(/[^\n]*$/, "")
        .split("\n")
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as { id: string; ok: boolean; response?: { done?: boolean } })
    : []

describe("sluice batch", () => {
  it.scopedLive("1,000 jobs: SIGINT halfway, run again: every job done exactly once, summary correct", () =>
    Effect.gen(function* () {
      const config = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 1, numParallel: 16 }))
      const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config })
      const dir = mkdtempSync(join(tmpdir(), "sluice-batch-"))
      const input = join(dir, "jobs.jsonl")
      const output = join(dir, "jobs.results.jsonl")
      const jobs = Array.from({ length: 1000 }, (_, i) => ({
        id: `job-${i}`,
        request: { model: "llama3.2", messages: [{ role: "user", content: `question ${i}` }] }
      }))
      writeFileSync(input, jobs.map((j) => JSON.stringify(j)).join("\n") + "\n")
      const args = ["batch", input, "--ollama", sim.url, "--concurrency", "16"]

      const first = yield* sluice(args, { SLUICE_BACKEND_SLOTS: "16" })
      yield* Effect.promise(async () => {
        while (results(output).length < 300) await new Promise((r) => setTimeout(r, 20))
      })
      first.child.kill("SIGINT")
      yield* Effect.promise(() => first.exited)
      const partial = results(output)
      assert.isBelow(partial.length, 1000)

      const second = yield* sluice(args, { SLUICE_BACKEND_SLOTS: "16" })
      assert.strictEqual(yield* Effect.promise(() => second.exited), 0)
      const all = results(output)
      assert.strictEqual(all.length, 1000)
      assert.strictEqual(new Set(all.map((r) => r.id)).size, 1000)
      assert.isTrue(all.every((r) => r.ok && r.response?.done === true))
      // the first run's results are untouched, in place
      assert.deepStrictEqual(all.slice(0, partial.length), partial)
      assert.include(
        second.stdout(),
        `1000 jobs: ${1000 - partial.length} succeeded, 0 failed, ${partial.length} already done`
      )
    })
  )
})
