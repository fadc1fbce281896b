/**
 * `sluice serve --config`: a config file with two backends serving different models and an alias routes each call
 * only to a backend that serves its model; a typo in the file is refused at start with the key and line named.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Ollama } from "ollama"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import { sluice, waitFor } from "./process.js"

const listening = /Listening on (http:\/\/[\w.:[\]]+)/

const file = (name: string, text: string) => {
  const path = join(mkdtempSync(join(tmpdir(), "sluice-config-")), name)
  writeFileSync(path, text)
  return path
}

const chats = (sim: Simulator.Service) => Effect.map(sim.stats, (s) => s.requests["/api/chat"] ?? 0)

describe("sluice serve --config", () => {
  it.scopedLive("routes each model (and alias) only to the backend configured to serve it; /api/tags lists them", () =>
    Effect.gen(function* () {
      // both simulators have both models: only the file decides where a call may go
      const a = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: fast() })
      const b = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: fast() })
      const config = file(
        "sluice.yaml",
        [
          "backends:",
          `  - url: ${a.url}`,
          "    models: [llama3.2]",
          `  - url: ${b.url}`,
          "    models: [fast]",
          "models:",
          "  qwen3:",
          "    aliases: [fast]",
          ""
        ].join("\n")
      )
      const run = yield* sluice(["serve", "--port", "0", "--config", config])
      const url = yield* waitFor(run, listening)
      const ollama = new Ollama({ host: url })
      const ask = (model: string, i: number) =>
        ollama.chat({ model, messages: [{ role: "user", content: `question ${i} for ${model}` }] })
      const answers = yield* Effect.promise(() =>
        Promise.all([0, 1, 2, 3].flatMap((i) => [ask("llama3.2", i), ask("fast", i), ask("qwen3", i)]))
      )
      assert.strictEqual(answers.length, 12)
      assert.deepStrictEqual([yield* chats(a), yield* chats(b)], [4, 8])
      // a call by alias is answered by (and names) the model it stands for
      const byAlias = answers.filter((_, i) => i % 3 === 1)
      assert.isTrue(
        byAlias.every((r) => r.model.startsWith("qwen3")),
        byAlias.map((r) => r.model).join()
      )

      const names = (yield* Effect.promise(() => ollama.list())).models.map((m) => m.name).sort()
      assert.deepStrictEqual(names, ["fast", "llama3.2:latest", "qwen3:latest"])
      const openAi = yield* Effect.promise(() => fetch(`${url}/v1/models`).then((r) => r.json()))
      const ids = (openAi as { data: ReadonlyArray<{ id: string }> }).data.map((m) => m.id)
      assert.includeMembers(ids, ["fast", "llama3.2:latest", "qwen3:latest"])
      const shown = yield* Effect.promise(() => ollama.show({ model: "fast" }))
      assert.isString(shown.modelfile)
    })
  )

  it.scopedLive(
    "a typo in the file stops the start with the file, line and key named; validate says the file is valid",
    () =>
      Effect.gen(function* () {
        const bad = file("sluice.yaml", "backends:\n  - url: http://127.0.0.1:1\n    slot: 4\n")
        const run = yield* sluice(["serve", "--port", "0", "--config", bad])
        assert.notStrictEqual(yield* Effect.promise(() => run.exited), 0)
        assert.include(run.stderr(), `${bad}:3: backends[0].slot: unknown key`)

        const good = file("sluice.json", JSON.stringify({ server: { backend: "simulator" } }))
        const check = yield* sluice(["validate", "--config", good])
        yield* Effect.promise(() => check.exited)
        assert.include(check.stdout(), `config file ${good}: valid`)
      })
  )
})
