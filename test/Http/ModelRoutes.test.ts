/**
 * Model management through the gateway with the official `ollama` client: the gateway in process in front of two
 * simulators, authentication off (loopback, no key), as Ollama's own API is on the same machine.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { type CreateRequest, Ollama, type ProgressResponse } from "ollama"
import {
  collect,
  digestOf,
  fetchAt,
  gateway,
  GatewayUrl,
  layer as twoBackends,
  namesAt,
  rejection,
  Sims
} from "./ModelRoutesFixture.js"

const client = (headers: Record<string, string> = {}) => Effect.map(GatewayUrl, (host) => new Ollama({ host, headers }))

type Line = ProgressResponse & { readonly backend?: string }

layer(twoBackends, { excludeTestServices: true })("model management through the gateway", (it) => {
  it.effect("pull streams each backend's progress, tagged, and ends with one success once both are done", () =>
    Effect.gen(function* () {
      const { a, b } = yield* Sims
      const ollama = yield* client()
      const lines: Array<Line> = yield* collect(
        yield* Effect.promise(() => ollama.pull({ model: "tinyllama", stream: true }))
      )
      assert.deepStrictEqual(lines.at(-1), { status: "success" } as unknown as Line)
      for (const sim of [a, b]) {
        const mine = lines.filter((l) => l.backend === sim.url).map((l) => l.status)
        assert.deepStrictEqual(mine[0], "pulling manifest")
        assert.deepStrictEqual(mine.at(-1), "finished")
        assert.include(yield* namesAt(sim.url), "tinyllama:latest")
      }
      assert.include(yield* namesAt(yield* GatewayUrl), "tinyllama:latest")
    })
  )

  it.effect("x-sluice-backend names one backend: its progress is relayed as it is, the other is untouched", () =>
    Effect.gen(function* () {
      const { a, b } = yield* Sims
      const ollama = yield* client({ "x-sluice-backend": b.url })
      const lines = yield* collect(yield* Effect.promise(() => ollama.pull({ model: "only-on-b", stream: true })))
      assert.deepStrictEqual(lines[0], { status: "pulling manifest" } as unknown as ProgressResponse)
      assert.deepStrictEqual(lines.at(-1), { status: "success" } as unknown as ProgressResponse)
      assert.isTrue(lines.every((l) => !("backend" in l)))
      assert.include(yield* namesAt(b.url), "only-on-b:latest")
      assert.notInclude(yield* namesAt(a.url), "only-on-b:latest")
      // by index too, and the non-streamed form answers Ollama's last line
      const byIndex = yield* client({ "x-sluice-backend": "0" })
      assert.strictEqual((yield* Effect.promise(() => byIndex.pull({ model: "only-on-a" }))).status, "success")
      assert.include(yield* namesAt(a.url), "only-on-a:latest")
      assert.notInclude(yield* namesAt(b.url), "only-on-a:latest")
    })
  )

  it.effect("delete and copy reach every backend; the backend's 404 comes back in Ollama's words", () =>
    Effect.gen(function* () {
      const { a, b } = yield* Sims
      const ollama = yield* client()
      yield* Effect.promise(() => ollama.copy({ source: "llama3.2", destination: "my-copy" }))
      for (const sim of [a, b]) assert.include(yield* namesAt(sim.url), "my-copy:latest")
      yield* Effect.promise(() => ollama.delete({ model: "my-copy" }))
      for (const sim of [a, b]) assert.notInclude(yield* namesAt(sim.url), "my-copy:latest")
      const gone = yield* rejection(() => ollama.delete({ model: "my-copy" }))
      assert.strictEqual(gone.status_code, 404)
      assert.strictEqual(gone.error, "model 'my-copy' not found")
      const noSource = yield* rejection(() => ollama.copy({ source: "nope", destination: "x" }))
      assert.strictEqual(noSource.status_code, 404)
      assert.strictEqual(noSource.error, 'model "nope" not found')
    })
  )

  it.effect("a model on one backend only: delete succeeds (the other's 404 is no failure)", () =>
    Effect.gen(function* () {
      const { a, b } = yield* Sims
      const ollama = yield* client()
      const onA = yield* client({ "x-sluice-backend": a.url })
      yield* Effect.promise(() => onA.copy({ source: "llama3.2", destination: "lonely" }))
      assert.notInclude(yield* namesAt(b.url), "lonely:latest")
      yield* Effect.promise(() => ollama.delete({ model: "lonely" }))
      assert.notInclude(yield* namesAt(a.url), "lonely:latest")
    })
  )

  it.effect("create from a model, streamed and not; push goes to one backend unless told all", () =>
    Effect.gen(function* () {
      const { a, b } = yield* Sims
      const ollama = yield* client()
      const created = yield* collect(
        yield* Effect.promise(() => ollama.create({ model: "made", from: "llama3.2", stream: true }))
      )
      assert.deepStrictEqual(created.at(-1), { status: "success" } as unknown as ProgressResponse)
      for (const sim of [a, b]) assert.include(yield* namesAt(sim.url), "made:latest")
      assert.strictEqual(
        (yield* Effect.promise(() => ollama.create({ model: "made2", from: "made" }))).status,
        "success"
      )
      const pushed: Array<Line> = yield* collect(
        yield* Effect.promise(() => ollama.push({ model: "made", stream: true }))
      )
      assert.deepStrictEqual(
        pushed.map((l) => l.status),
        ["retrieving manifest", "starting upload", pushed[2]!.status, "pushing manifest", "success"]
      )
      const everywhere = yield* client({ "x-sluice-backend": "all" })
      const both: Array<Line> = yield* collect(
        yield* Effect.promise(() => everywhere.push({ model: "made", stream: true }))
      )
      assert.sameMembers(
        [...new Set(both.flatMap((l) => (l.backend === undefined ? [] : [l.backend])))],
        [a.url, b.url]
      )
      const missing = yield* rejection(() => ollama.push({ model: "nowhere" }))
      assert.strictEqual(missing.status_code, 404)
    })
  )

  it.effect(
    "blobs: HEAD 404, POST 201 to both backends (body streamed, past the 8 MiB JSON cap), HEAD 200, create with files",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* Sims
        const bytes = new Uint8Array(10 * 1024 * 1024).map((_, i) => i % 251)
        const digest = digestOf(bytes)
        assert.strictEqual((yield* gateway(`/api/blobs/${digest}`, { method: "HEAD" })).status, 404)
        assert.strictEqual((yield* gateway(`/api/blobs/${digest}`, { method: "POST", body: bytes })).status, 201)
        for (const sim of [a, b])
          assert.strictEqual((yield* fetchAt(sim.url, `/api/blobs/${digest}`, { method: "HEAD" })).status, 200)
        assert.strictEqual((yield* gateway(`/api/blobs/${digest}`, { method: "HEAD" })).status, 200)
        assert.strictEqual((yield* gateway(`/api/blobs/${digest}`, { method: "POST", body: bytes })).status, 200)
        const ollama = yield* client()
        const files = { model: "from-files", files: { "model.gguf": digest } } as CreateRequest & { stream?: false }
        assert.strictEqual((yield* Effect.promise(() => ollama.create(files))).status, "success")
        for (const sim of [a, b]) assert.include(yield* namesAt(sim.url), "from-files:latest")
      })
  )

  it.effect("blobs: one backend lacking the blob gets it; a wrong digest is 400 digest mismatch; a bad one 400", () =>
    Effect.gen(function* () {
      const { a, b } = yield* Sims
      const bytes = new TextEncoder().encode("a small adapter")
      const digest = digestOf(bytes)
      assert.strictEqual((yield* fetchAt(a.url, `/api/blobs/${digest}`, { method: "POST", body: bytes })).status, 201)
      assert.strictEqual((yield* gateway(`/api/blobs/${digest}`, { method: "HEAD" })).status, 404)
      assert.strictEqual((yield* gateway(`/api/blobs/${digest}`, { method: "POST", body: bytes })).status, 201)
      assert.strictEqual((yield* fetchAt(b.url, `/api/blobs/${digest}`, { method: "HEAD" })).status, 200)
      const wrong = `sha256:${"0".repeat(64)}`
      const mismatch = yield* gateway(`/api/blobs/${wrong}`, { method: "POST", body: bytes })
      assert.strictEqual(mismatch.status, 400)
      assert.deepStrictEqual(JSON.parse(mismatch.text), {
        error: `digest mismatch, expected "${wrong}", got "${digest}"`
      })
      const bad = yield* gateway("/api/blobs/sha256:xyz", { method: "POST", body: bytes })
      assert.deepStrictEqual([bad.status, JSON.parse(bad.text)], [400, { error: "invalid digest format" }])
      const ollama = yield* client()
      const unknown = yield* rejection(() =>
        ollama.create({ model: "x", files: { "m.gguf": wrong } } as CreateRequest & { stream?: false })
      )
      assert.strictEqual(unknown.status_code, 400)
    })
  )

  it.effect("a bad body or an unknown backend is one clear 400 from Sluice", () =>
    Effect.gen(function* () {
      const post = (path: string, body: string, headers: Record<string, string> = {}) =>
        gateway(path, { method: "POST", body, headers: { "content-type": "application/json", ...headers } })
      const cases = [
        [yield* post("/api/pull", '{"model": 5}'), 'invalid type for "model": expected a string, got an integer'],
        [yield* post("/api/pull", "{}"), "model is required"],
        [yield* post("/api/pull", ""), "missing request body"],
        [yield* post("/api/copy", '{"source": "llama3.2"}'), "destination is required"],
        [yield* post("/api/create", '{"from": "llama3.2"}'), "model is required"]
      ] as const
      for (const [answer, error] of cases) {
        assert.strictEqual(answer.status, 400)
        assert.strictEqual(JSON.parse(answer.text).error, error)
      }
      const { a, b } = yield* Sims
      const unknown = yield* post("/api/pull", '{"model": "x"}', { "x-sluice-backend": "7" })
      assert.strictEqual(unknown.status, 400)
      assert.include(JSON.parse(unknown.text).error, `use "all", an index from 0 to 1, or one of ${a.url}, ${b.url}`)
    })
  )
})
