import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { serverBusyMessage } from "../../src/Domain/Common.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast, testConfig } from "../../src/Simulator/SimulatorConfig.js"
import { client, dot, failure, isNanos, lines, norm, post, promise, url } from "./support.js"

const llama = testConfig.models[0]!
const config = fast({
  models: [...testConfig.models, { ...llama, name: "plain:latest", capabilities: ["completion"] }]
})
const messages = [{ role: "user", content: "hello there, simulator" }]
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } } }
  }
}

layer(Simulator.layerTest(config), { excludeTestServices: true })("Simulator through the ollama client", (it) => {
  it.effect("list, show, ps and version", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const list = yield* promise(() => ollama.list())
      const names = list.models.map((m) => m.name)
      assert.includeMembers(names, ["llama3.2:latest", "qwen3:latest", "nomic-embed-text:latest", "all-minilm:latest"])
      const first = list.models[0]!
      assert.match(first.digest, /^[0-9a-f]{64}$/)
      assert.isAbove(first.size, 0)
      assert.strictEqual(first.details.format, "gguf")
      assert.isFalse(Number.isNaN(Date.parse(String(first.modified_at))))
      const show = yield* promise(() => ollama.show({ model: "Llama3.2" }))
      assert.includeMembers(show.capabilities, ["completion", "tools"])
      assert.strictEqual(
        (show.model_info as unknown as Record<string, unknown>)["llama.context_length"],
        llama.contextLength
      )
      yield* promise(() => ollama.generate({ model: "llama3.2", prompt: "" }))
      const ps = yield* promise(() => ollama.ps())
      assert.include(
        ps.models.map((m) => m.name),
        "llama3.2:latest"
      )
      assert.isFalse(Number.isNaN(Date.parse(String(ps.models[0]!.expires_at))))
      const version = yield* promise(() => ollama.version())
      assert.strictEqual(version.version, "0.12.6")
    })
  )

  it.effect("chat, streamed and not: done chunk with integer nanosecond metrics", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const whole = yield* promise(() => ollama.chat({ model: "llama3.2", messages }))
      assert.isTrue(whole.done)
      assert.strictEqual(whole.done_reason, "stop")
      assert.isAbove(whole.message.content.length, 0)
      for (const n of [whole.total_duration, whole.load_duration, whole.prompt_eval_duration, whole.eval_duration]) {
        assert.isTrue(isNanos(n), String(n))
      }
      const stream = yield* promise(() => ollama.chat({ model: "llama3.2", messages, stream: true }))
      const parts = yield* promise(async () => {
        const out = []
        for await (const part of stream) out.push(part)
        return out
      })
      const last = parts[parts.length - 1]!
      assert.isTrue(last.done)
      assert.isTrue(isNanos(last.total_duration) && isNanos(last.eval_duration))
      assert.strictEqual(last.eval_count, parts.length - 1)
      assert.strictEqual(parts.map((p) => p.message.content).join(""), whole.message.content)
      assert.isTrue(parts.slice(0, -1).every((p) => !p.done))
    })
  )

  it.effect("generate, streamed and not, carries context; raw does not", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const whole = yield* promise(() => ollama.generate({ model: "llama3.2", prompt: "Why is the sky blue?" }))
      assert.isAbove(whole.response!.length, 0)
      assert.isArray(whole.context)
      const stream = yield* promise(() =>
        ollama.generate({ model: "llama3.2", prompt: "Why is the sky blue?", stream: true })
      )
      let text = ""
      let final: { done: boolean; context?: Array<number>; eval_count: number } | undefined
      yield* promise(async () => {
        for await (const part of stream) ((text += part.response), (final = part))
      })
      assert.strictEqual(text, whole.response)
      assert.isTrue(final!.done)
      assert.isArray(final!.context)
      const base = yield* url
      const raw = yield* post(base, "/api/generate", { model: "llama3.2", prompt: "x", raw: true, stream: false })
      assert.isUndefined(JSON.parse(raw.text).context)
    })
  )

  it.effect("deterministic output: same request same text, seed changes it, num_predict caps it", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const ask = (options: Record<string, number>) =>
        promise(() => ollama.chat({ model: "llama3.2", messages, options }))
      const a = yield* ask({})
      const b = yield* ask({})
      const seeded = yield* ask({ seed: 7 })
      assert.strictEqual(a.message.content, b.message.content)
      assert.notStrictEqual(seeded.message.content, a.message.content)
      const capped = yield* ask({ num_predict: 5 })
      assert.strictEqual(capped.done_reason, "length")
      assert.strictEqual(capped.eval_count, 5)
    })
  )

  it.effect("embed: one or many inputs, model dimension, unit norm, dimensions truncation", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const one = yield* promise(() => ollama.embed({ model: "nomic-embed-text", input: "hello world" }))
      assert.strictEqual(one.embeddings.length, 1)
      assert.strictEqual(one.embeddings[0]!.length, 768)
      assert.closeTo(norm(one.embeddings[0]!), 1, 1e-6)
      const many = yield* promise(() =>
        ollama.embed({ model: "all-minilm", input: ["red apple pie", "green apple pie", "tax law"] })
      )
      assert.strictEqual(many.embeddings.length, 3)
      const [apple, green, tax] = many.embeddings as [Array<number>, Array<number>, Array<number>]
      assert.strictEqual(apple.length, 384)
      assert.isAbove(dot(apple, green), dot(apple, tax))
      assert.isTrue(Number.isInteger(many.prompt_eval_count) && many.prompt_eval_count > 0)
      const cut = yield* promise(() => ollama.embed({ model: "all-minilm", input: "hello", dimensions: 64 }))
      assert.strictEqual(cut.embeddings[0]!.length, 64)
      assert.closeTo(norm(cut.embeddings[0]!), 1, 1e-6)
      const empty = yield* promise(() => ollama.embed({ model: "all-minilm", input: [] }))
      assert.deepStrictEqual(empty.embeddings, [])
      const legacy = yield* promise(() => ollama.embeddings({ model: "all-minilm", prompt: "hello" }))
      assert.strictEqual(legacy.embedding.length, 384)
      assert.isAbove(Math.abs(norm(legacy.embedding) - 1), 0.01)
    })
  )

  it.effect("errors: unknown model 404, capabilities 400, bad input 400", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const missing = yield* failure(() => ollama.chat({ model: "missing", messages }))
      assert.strictEqual(missing.name, "ResponseError")
      assert.strictEqual(missing.status_code, 404)
      assert.strictEqual(missing.error, "model 'missing' not found")
      const embedMissing = yield* failure(() => ollama.embed({ model: "missing", input: "x" }))
      assert.strictEqual(embedMissing.error, `model "missing" not found, try pulling it first`)
      const noEmbed = yield* failure(() => ollama.embed({ model: "llama3.2", input: "x" }))
      assert.strictEqual(noEmbed.status_code, 400)
      assert.strictEqual(noEmbed.error, `"llama3.2" does not support embeddings`)
      const noChat = yield* failure(() => ollama.chat({ model: "all-minilm", messages }))
      assert.strictEqual(noChat.error, `"all-minilm" does not support chat`)
      const noGenerate = yield* failure(() => ollama.generate({ model: "all-minilm", prompt: "x" }))
      assert.strictEqual(noGenerate.error, `"all-minilm" does not support generate`)
      const noTools = yield* failure(() => ollama.chat({ model: "plain", messages, tools: [weather] }))
      assert.strictEqual(noTools.error, "registry.ollama.ai/library/plain:latest does not support tools")
      const noThink = yield* failure(() => ollama.chat({ model: "llama3.2", messages, think: true }))
      assert.strictEqual(noThink.error, `"llama3.2" does not support thinking`)
      const base = yield* url
      const badInput = yield* post(base, "/api/embed", { model: "all-minilm", input: ["a", 1] })
      assert.deepStrictEqual([badInput.status, JSON.parse(badInput.text)], [400, { error: "invalid input type" }])
      const noModel = yield* post(base, "/api/chat", { model: "", messages })
      assert.deepStrictEqual([noModel.status, JSON.parse(noModel.text)], [400, { error: "model is required" }])
      assert.strictEqual(noModel.type, "application/json; charset=utf-8")
      const badJson = yield* promise(() => fetch(`${base}/api/chat`, { method: "POST", body: "{nope" }))
      assert.strictEqual(badJson.status, 400)
      const wrongMethod = yield* promise(() => fetch(`${base}/api/chat`))
      assert.strictEqual(wrongMethod.status, 405)
      const nowhere = yield* promise(() => fetch(`${base}/api/nowhere`).then(async (r) => [r.status, await r.text()]))
      assert.deepStrictEqual(nowhere, [404, "404 page not found"])
      assert.notStrictEqual(serverBusyMessage, "")
    })
  )

  it.effect("tool calls: streamed as one done:false chunk, whole in message.tool_calls", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const ask = [{ role: "user", content: "Use get_weather for Paris." }]
      const whole = yield* promise(() => ollama.chat({ model: "llama3.2", messages: ask, tools: [weather] }))
      const call = whole.message.tool_calls![0]! as { id?: string; function: { name: string; arguments: any } }
      assert.strictEqual(call.function.name, "get_weather")
      assert.strictEqual(call.function.arguments.city, "Paris")
      assert.isTrue(Number.isInteger(call.function.arguments.days))
      assert.match(call.id!, /^call_[a-z0-9]{8}$/)
      const base = yield* url
      const streamed = lines(
        (yield* post(base, "/api/chat", { model: "llama3.2", messages: ask, tools: [weather] })).text
      )
      assert.strictEqual(streamed.length, 2)
      const chunk = streamed[0] as { done: boolean; message: { content: string; tool_calls: Array<unknown> } }
      assert.deepStrictEqual([chunk.done, chunk.message.content, chunk.message.tool_calls.length], [false, "", 1])
      assert.strictEqual(streamed[1]!.done, true)
      const answered = [...ask, whole.message, { role: "tool", content: "sunny", tool_name: "get_weather" }]
      const after = yield* promise(() => ollama.chat({ model: "llama3.2", messages: answered, tools: [weather] }))
      assert.isUndefined(after.message.tool_calls)
      assert.isAbove(after.message.content.length, 0)
    })
  )

  it.effect("thinking models stream thinking before content; think:false turns it off", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const thought = yield* promise(() => ollama.chat({ model: "qwen3", messages }))
      assert.isAbove(thought.message.thinking!.length, 0)
      assert.isAbove(thought.message.content.length, 0)
      const plain = yield* promise(() => ollama.chat({ model: "qwen3", messages, think: false }))
      assert.isUndefined(plain.message.thinking)
      const gen = yield* promise(() => ollama.generate({ model: "qwen3", prompt: "hi" }))
      assert.isAbove(gen.thinking!.length, 0)
    })
  )

  it.effect("load and unload answers; pull, copy and delete change the model list", () =>
    Effect.gen(function* () {
      const ollama = yield* client
      const loaded = yield* promise(() => ollama.chat({ model: "qwen3", messages: [] }))
      assert.deepStrictEqual([loaded.done, loaded.done_reason], [true, "load"])
      const running = (yield* promise(() => ollama.ps())).models.map((m) => m.name)
      assert.include(running, "qwen3:latest")
      const unloaded = yield* promise(() => ollama.generate({ model: "qwen3", prompt: "", keep_alive: 0 }))
      assert.strictEqual(unloaded.done_reason, "unload")
      const after = (yield* promise(() => ollama.ps())).models.map((m) => m.name)
      assert.notInclude(after, "qwen3:latest")
      const pulled = yield* promise(() => ollama.pull({ model: "mistral" }))
      assert.strictEqual(pulled.status, "success")
      yield* promise(() => ollama.copy({ source: "mistral", destination: "mistral-copy" }))
      const names = (yield* promise(() => ollama.list())).models.map((m) => m.name)
      assert.includeMembers(names, ["mistral:latest", "mistral-copy:latest"])
      yield* promise(() => ollama.delete({ model: "mistral-copy" }))
      const gone = yield* failure(() => ollama.delete({ model: "mistral-copy" }))
      assert.deepStrictEqual([gone.status_code, gone.error], [404, "model 'mistral-copy' not found"])
      const badCopy = yield* failure(() => ollama.copy({ source: "nope", destination: "x" }))
      assert.deepStrictEqual([badCopy.status_code, badCopy.error], [404, `model "nope" not found`])
    })
  )
})
