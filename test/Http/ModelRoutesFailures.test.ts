/**
 * Model management when a backend cannot be reached: the gateway in front of a simulator and a dead port. One
 * backend failing is reported by name, after the others' progress; the dead one alone answers 502.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Ollama } from "ollama"
import { Dead, gateway, GatewayUrl, layerWithDeadBackend, namesAt, rejection, Sims } from "./ModelRoutesFixture.js"

layer(layerWithDeadBackend, { excludeTestServices: true })("model management with a dead backend", (it) => {
  it.effect("a combined pull streams the live backend's progress, then ends with an error naming the dead one", () =>
    Effect.gen(function* () {
      const { a } = yield* Sims
      const dead = yield* Dead
      const host = yield* GatewayUrl
      const response = yield* gateway("/api/pull", { method: "POST", body: '{"model":"half"}' })
      const lines = response.text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l))
      assert.strictEqual(response.status, 200)
      assert.deepStrictEqual(lines.at(-2), { status: "finished", backend: a.url })
      assert.match(lines.at(-1).error, new RegExp(`^${dead}: .+ \\(succeeded on ${a.url}\\)$`))
      assert.include(yield* namesAt(a.url), "half:latest")
      const thrown = yield* rejection(async () => {
        for await (const _ of await new Ollama({ host }).pull({ model: "half", stream: true })) void _
      })
      assert.include(thrown.message, `succeeded on ${a.url}`)
    })
  )

  it.effect("the dead backend alone answers 502 with its address; non-streamed, the failure's status", () =>
    Effect.gen(function* () {
      const dead = yield* Dead
      const host = yield* GatewayUrl
      const alone = yield* rejection(() =>
        new Ollama({ host, headers: { "x-sluice-backend": "1" } }).pull({ model: "x" })
      )
      assert.strictEqual(alone.status_code, 502)
      assert.include(alone.error, dead)
      const both = yield* rejection(() => new Ollama({ host }).copy({ source: "llama3.2", destination: "c" }))
      assert.strictEqual(both.status_code, 502)
    })
  )
})
