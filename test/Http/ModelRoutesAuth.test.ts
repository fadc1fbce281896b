/**
 * Model management needs the admin scope: the gateway in process in front of two simulators, keys in an in-memory
 * store. Before the first key exists a loopback gateway has authentication off, and the routes are open.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { Ollama } from "ollama"
import { modelRoutes, scopeOf } from "../../src/Http/AuthPolicy.js"
import { bearer, createKey } from "./AuthFixtures.js"
import { gateway, GatewayUrl, layerWithKeys, namesAt, rejection, Sims } from "./ModelRoutesFixture.js"

const digest = `sha256:${"a".repeat(64)}`

describe("AuthPolicy", () => {
  it("names the model-management routes and every blob path as admin", () => {
    for (const path of [...modelRoutes, `/api/blobs/${digest}`]) assert.strictEqual(scopeOf(path), "admin")
    assert.deepStrictEqual(modelRoutes, ["/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"])
    assert.strictEqual(scopeOf("/api/tags"), "inference")
  })
})

layer(layerWithKeys, { excludeTestServices: true })("model management and API keys", (it) => {
  it.effect("open while no key exists (loopback), then 403 for an inference key, 401 without one, ok for admin", () =>
    Effect.gen(function* () {
      const host = yield* GatewayUrl
      const { a } = yield* Sims
      yield* Effect.promise(() => new Ollama({ host }).pull({ model: "before-keys" }))
      assert.include(yield* namesAt(a.url), "before-keys:latest")

      const app = yield* createKey("app", ["inference"])
      const admin = yield* createKey("ops", ["admin"])
      // the gateway asks the store again at most once a second while authentication is off: wait for it to turn on
      yield* gateway("/api/version").pipe(
        Effect.filterOrFail((answer) => answer.status === 401),
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds")))
      )
      const asApp = new Ollama({ host, headers: bearer(app.key) })
      const refusals = [
        yield* rejection(() => asApp.pull({ model: "x", stream: true })),
        yield* rejection(() => asApp.push({ model: "x" })),
        yield* rejection(() => asApp.create({ model: "x", from: "llama3.2" })),
        yield* rejection(() => asApp.copy({ source: "llama3.2", destination: "x" })),
        yield* rejection(() => asApp.delete({ model: "llama3.2" }))
      ]
      for (const e of refusals) {
        assert.strictEqual(e.status_code, 403)
        assert.strictEqual(e.error, 'this API key does not have the "admin" scope')
      }
      for (const method of ["HEAD", "POST"]) {
        const blob = yield* gateway(`/api/blobs/${digest}`, { method, headers: bearer(app.key) })
        assert.strictEqual(blob.status, 403)
      }
      assert.strictEqual((yield* gateway("/api/pull", { method: "POST", body: '{"model":"x"}' })).status, 401)
      assert.include(yield* namesAt(a.url), "llama3.2:latest")

      const asAdmin = new Ollama({ host, headers: bearer(admin.key) })
      assert.strictEqual((yield* Effect.promise(() => asAdmin.pull({ model: "with-key" }))).status, "success")
      assert.include(yield* namesAt(a.url), "with-key:latest")
    })
  )
})
