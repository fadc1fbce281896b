import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Ollama } from "ollama"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { GatewayUrl, disconnectMidStream, layer as gateway } from "./gateway.js"

const chatModel = "llama3.2"
const embedModel = "nomic-embed-text"
const messages = [{ role: "user", content: "hi there" }]

const client = Effect.map(GatewayUrl, (host) => new Ollama({ host }))
const promise = <A>(f: () => Promise<A>) => Effect.promise(f)
const failure = <A>(f: () => Promise<A>) =>
  Effect.promise(() =>
    f().then(
      () => assert.fail("expected the call to fail"),
      (e: unknown) => e as { name: string; status_code?: number; message: string }
    )
  )

const norm = (v: ReadonlyArray<number>) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))
const isNanos = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0

/** Reads an NDJSON response line by line. */
const lines = (text: string) =>
  text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>)

layer(gateway(fast()), { excludeTestServices: true })("gateway: Ollama's API in front of the simulator", (it) => {
  it.effect("list, show, ps and version answer as Ollama does", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const list = yield* promise(() => ollama.list())
      assert.include(
        list.models.map((m) => m.name),
        "llama3.2:latest"
      )
      const show = yield* promise(() => ollama.show({ model: chatModel }))
      assert.include(show.capabilities, "completion")
      const version = yield* promise(() => ollama.version())
      assert.match(version.version, /^\d+\.\d+\.\d+$/)
      yield* promise(() => ollama.chat({ model: chatModel, messages }))
      const ps = yield* promise(() => ollama.ps())
      assert.include(
        ps.models.map((m) => m.name),
        "llama3.2:latest"
      )
    })
  )

  it.effect("chat streams chunk by chunk and ends with done:true and integer nanosecond metrics", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const whole = yield* promise(() => ollama.chat({ model: chatModel, messages }))
      const chunks = yield* promise(async () => {
        const out = []
        for await (const chunk of await ollama.chat({ model: chatModel, messages, stream: true })) out.push(chunk)
        return out
      })
      assert.isAbove(chunks.length, 2)
      const last = chunks[chunks.length - 1]!
      assert.isTrue(last.done)
      assert.strictEqual(last.done_reason, "stop")
      for (const key of ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration", "eval_count"]) {
        assert.isTrue(isNanos((last as unknown as Record<string, unknown>)[key]), key)
      }
      assert.strictEqual(chunks.map((c) => c.message.content).join(""), whole.message.content)
    })
  )

  it.effect("generate, streamed and not, gives the same text", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const whole = yield* promise(() => ollama.generate({ model: chatModel, prompt: "why is the sky blue?" }))
      const text = yield* promise(async () => {
        let out = ""
        for await (const c of await ollama.generate({ model: chatModel, prompt: "why is the sky blue?", stream: true }))
          out += c.response
        return out
      })
      assert.isAbove(whole.response!.length, 0)
      assert.strictEqual(text, whole.response)
    })
  )

  it.effect("embed with one input and with many: one normalised vector each", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const one = yield* promise(() => ollama.embed({ model: embedModel, input: "hello" }))
      assert.strictEqual(one.embeddings.length, 1)
      const many = yield* promise(() => ollama.embed({ model: embedModel, input: ["a", "b", "c"] }))
      assert.strictEqual(many.embeddings.length, 3)
      for (const v of [...one.embeddings, ...many.embeddings]) {
        assert.strictEqual(v.length, 768)
        assert.closeTo(norm(v), 1, 1e-6)
      }
      const legacy = yield* promise(() => ollama.embeddings({ model: embedModel, prompt: "hello" }))
      assert.strictEqual(legacy.embedding.length, 768)
    })
  )

  it.effect("an unknown model is a 404 ResponseError, streamed or not", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const once = yield* failure(() => ollama.chat({ model: "nope", messages }))
      assert.strictEqual(once.name, "ResponseError")
      assert.strictEqual(once.status_code, 404)
      assert.strictEqual(once.message, "model 'nope' not found")
      const streamed = yield* failure(() => ollama.generate({ model: "nope", prompt: "x", stream: true }))
      assert.strictEqual(streamed.status_code, 404)
    })
  )

  it.effect("an unknown model on embed and on the legacy embeddings is a 404 ResponseError", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const embed = yield* failure(() => ollama.embed({ model: "nope", input: "x" }))
      assert.strictEqual(embed.name, "ResponseError")
      assert.strictEqual(embed.status_code, 404)
      assert.include(embed.message, "nope")
      const legacy = yield* failure(() => ollama.embeddings({ model: "nope", prompt: "x" }))
      assert.strictEqual(legacy.status_code, 404)
    })
  )

  it.effect("curl: a chat without `stream` streams NDJSON ending in done:true", () =>
    Effect.gen(function* () {
      const url = yield* GatewayUrl
      const response = yield* promise(() =>
        fetch(`${url}/api/chat`, { method: "POST", body: JSON.stringify({ model: chatModel, messages }) })
      )
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers.get("content-type"), "application/x-ndjson")
      const chunks = lines(yield* promise(() => response.text()))
      const last = chunks[chunks.length - 1]!
      assert.strictEqual(last.done, true)
      assert.isTrue(isNanos(last.total_duration))
      assert.isTrue(chunks.slice(0, -1).every((c) => c.done === false))
    })
  )

  it.effect("bad bodies are 400 with Ollama's error shape, and the server stays up", () =>
    Effect.gen(function* () {
      const url = yield* GatewayUrl
      const post = (body: string) => promise(() => fetch(`${url}/api/chat`, { method: "POST", body }))
      for (const body of ["{not json", "", '{"messages":[]}', '{"model":"llama3.2","messages":"hi"}']) {
        const response = yield* post(body)
        assert.strictEqual(response.status, 400, body)
        const json = (yield* promise(() => response.json())) as { error: unknown }
        assert.isString(json.error)
      }
      const ok = yield* post(JSON.stringify({ model: chatModel, messages, stream: false }))
      assert.strictEqual(ok.status, 200)
    })
  )

  it.effect("unknown paths are 404 `404 page not found`; / says Ollama is running", () =>
    Effect.gen(function* () {
      const url = yield* GatewayUrl
      const missing = yield* promise(() => fetch(`${url}/api/nothing`))
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(yield* promise(() => missing.text()), "404 page not found")
      const root = yield* promise(() => fetch(url))
      assert.strictEqual(yield* promise(() => root.text()), "Ollama is running")
      const head = yield* promise(() => fetch(url, { method: "HEAD" }))
      assert.strictEqual(head.status, 200)
    })
  )

  it.effect("/health says it serves in front of the simulator", () =>
    Effect.gen(function* () {
      const url = yield* GatewayUrl
      const health = (yield* promise(() => fetch(`${url}/health`).then((r) => r.json()))) as Record<string, any>
      assert.strictEqual(health.backend, "simulator")
      assert.strictEqual(health.status, "ok")
      assert.strictEqual(health.backends[0].reachable, true)
      assert.strictEqual(health.backends[0].breaker, "closed")
    })
  )
})

const slowStream = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 200 }))

layer(gateway(slowStream), { excludeTestServices: true })("gateway: cancellation", (it) => {
  it.effect("a client that disconnects mid-stream cancels the upstream call and frees its slot", () =>
    Effect.gen(function* () {
      const { before, after } = yield* disconnectMidStream("/api/chat", { model: chatModel, messages })
      assert.isAbove(after, before)
    })
  )
})

const tinyQueue = mapModels(fast({ maxQueue: 1 }), (m) => ({ ...m, loadMs: 1_000 }))

// A busy backend's 503 is backpressure: the engine re-queues the call (Retry.requeue) until its deadline.
layer(gateway(tinyQueue), { excludeTestServices: true })("gateway: a backend's full queue", (it) => {
  it.effect("is waited out with the shipped defaults: every call succeeds though the backend answered 503", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const sim = yield* Simulator
      const answers = yield* promise(() =>
        Promise.all(
          // distinct prompts: identical concurrent calls would be coalesced into one by the response cache
          [1, 2, 3, 4].map((i) => ollama.chat({ model: "qwen3", messages: [{ role: "user", content: `hi ${i}` }] }))
        )
      )
      assert.isTrue(answers.every((a) => a.done))
      assert.isAbove((yield* sim.stats).rejected503, 0)
    })
  )
})

const midStream = fast({ faults: { midStreamError: 1 } })

layer(gateway(midStream), { excludeTestServices: true })("gateway: a mid-stream error", (it) => {
  it.effect("reaches the client as an error line, and the stream has no done", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const error = yield* failure(async () => {
        for await (const _ of await ollama.chat({ model: chatModel, messages, stream: true })) {
          // drain
        }
      })
      assert.strictEqual(error.message, "simulated mid-stream error")
    })
  )
})
