/** `sluice validate` through the built bin: exit 0 against a simulator, non-zero listing every failed check. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { closedPort, sluice, waitFor } from "../Cli/process.js"

const simulate = Effect.flatMap(sluice(["simulate", "--port", "0"]), (sim) =>
  waitFor(sim, /simulator on (http:\/\/[\w.:]+)/)
)

const exitOf = (run: { readonly exited: Promise<number | null> }) => Effect.promise(() => run.exited)

describe("sluice validate (the built bin)", () => {
  it.scopedLive("passes against `sluice simulate`, printing the table", () =>
    Effect.gen(function* () {
      const url = yield* simulate
      const run = yield* sluice(["validate", "--port", "0", "--backend", "ollama", "--ollama", url], {
        SLUICE_REQUIRED_MODELS: "llama3.2",
        SLUICE_REQUIRED_EMBED_MODELS: "nomic-embed-text"
      })
      assert.strictEqual(yield* exitOf(run), 0, run.stderr())
      assert.match(run.stdout(), /^CHECK\s+SEVERITY\s+RESULT\s+DETAIL/)
      assert.match(run.stdout(), /chat-models\s+fatal\s+pass/)
      assert.match(run.stdout(), /0 fatal checks failed|checks passed/)
    })
  )

  it.scopedLive("an unwritable data dir, an unreachable backend, a missing model: each listed, exit non-zero", () =>
    Effect.gen(function* () {
      const url = yield* simulate
      const dead = `127.0.0.1:${yield* closedPort}`
      const file = join(mkdtempSync(join(tmpdir(), "sluice-validate-cli-")), "a-file")
      writeFileSync(file, "not a directory")
      const args = ["validate", "--port", "0", "--backend", "ollama", "--ollama", url, "--ollama", dead]
      const run = yield* sluice([...args, "--data-dir", join(file, "data")], {
        SLUICE_REQUIRED_MODELS: "no-such-model"
      })
      assert.strictEqual(yield* exitOf(run), 1)
      for (const check of ["data-dir-writable", "backends-reachable", "chat-models"]) {
        assert.match(run.stdout(), new RegExp(`${check}\\s+fatal\\s+FAIL`))
        assert.include(run.stderr(), `- ${check}:`)
      }
      assert.include(run.stderr(), "startup validation failed (3 fatal checks)")
      assert.include(run.stderr(), "what to do: ollama pull no-such-model:latest")
    })
  )
})
