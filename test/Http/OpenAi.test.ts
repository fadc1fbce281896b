import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import OpenAI, { NotFoundError } from "openai"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { GatewayUrl, disconnectMidStream, layer as gateway } from "./gateway.js"

const chatModel = "llama3.2"
const embedModel = "nomic-embed-text"
const messages = [{ role: "user" as const, content: "hi there" }]

const client = Effect.map(GatewayUrl, (url) => new OpenAI({ baseURL: `${url}/v1`, apiKey: "x", maxRetries: 0 }))
const promise = <A>(f: () => Promise<A>) => Effect.promise(f)
const failure = (f: () => Promise<unknown>) =>
  Effect.promise(() =>
    f().then(
      () => assert.fail("expected the call to fail"),
      (e: unknown) => e
    )
  )

const collect = <A>(stream: AsyncIterable<A>) =>
  promise(async () => {
    const out: Array<A> = []
    for await (const chunk of stream) out.push(chunk)
    return out
  })

/** The SSE events of a raw response body. */
const events = (text: string) =>
  text
    .split("\n\n")
    .filter((e) => e.length > 0)
    .map((e) => e.replace(/^data: /, ""))

const weather = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "the weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
  }
}

layer(gateway(fast()), { excludeTestServices: true })("gateway: OpenAI's API through the official client", (it) => {
  it.effect("chat, streamed and not, gives the same text; the stream ends with finish_reason and usage", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const whole = yield* promise(() => openai.chat.completions.create({ model: chatModel, messages }))
      assert.match(whole.id, /^chatcmpl-/)
      assert.strictEqual(whole.object, "chat.completion")
      assert.strictEqual(whole.system_fingerprint, "fp_ollama")
      assert.strictEqual(whole.choices[0]!.finish_reason, "stop")
      assert.strictEqual(whole.choices[0]!.message.role, "assistant")
      assert.isAbove(whole.usage!.completion_tokens, 0)
      assert.strictEqual(whole.usage!.total_tokens, whole.usage!.prompt_tokens + whole.usage!.completion_tokens)

      const stream = yield* promise(() =>
        openai.chat.completions.create({
          model: chatModel,
          messages,
          stream: true,
          stream_options: { include_usage: true }
        })
      )
      const chunks = yield* collect(stream)
      const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? "")).join("")
      assert.strictEqual(text, whole.choices[0]!.message.content)
      assert.strictEqual(chunks[0]!.choices[0]!.delta.role, "assistant")
      assert.isTrue(chunks.slice(1).every((c) => c.choices.every((ch) => ch.delta.role === undefined)))
      assert.isTrue(chunks.every((c) => c.id === chunks[0]!.id && c.created === chunks[0]!.created))
      const finish = chunks[chunks.length - 2]!
      assert.deepStrictEqual(finish.choices[0]!.delta, {})
      assert.strictEqual(finish.choices[0]!.finish_reason, "stop")
      const usage = chunks[chunks.length - 1]!
      assert.deepStrictEqual(usage.choices, [])
      assert.deepStrictEqual(usage.usage, whole.usage)
    })
  )

  it.effect("a raw stream is text/event-stream and ends with data: [DONE]", () =>
    Effect.gen(function* () {
      const url = yield* GatewayUrl
      const response = yield* promise(() =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          body: JSON.stringify({ model: chatModel, messages, stream: true })
        })
      )
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers.get("content-type"), "text/event-stream")
      assert.isNotNull(response.headers.get("x-sluice-overhead-ms"))
      const all = events(yield* promise(() => response.text()))
      assert.strictEqual(all[all.length - 1], "[DONE]")
      const last = JSON.parse(all[all.length - 2]!) as { choices: Array<{ finish_reason: string }> }
      assert.strictEqual(last.choices[0]!.finish_reason, "stop")
    })
  )

  it.effect("max_tokens becomes num_predict: the answer stops with finish_reason length", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const short = yield* promise(() => openai.chat.completions.create({ model: chatModel, messages, max_tokens: 2 }))
      assert.strictEqual(short.choices[0]!.finish_reason, "length")
      assert.strictEqual(short.usage!.completion_tokens, 2)
    })
  )

  it.effect("tool calls come back with arguments as a JSON string and finish_reason tool_calls", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const ask = [{ role: "user" as const, content: "call get_weather for Paris" }]
      const whole = yield* promise(() =>
        openai.chat.completions.create({ model: chatModel, messages: ask, tools: [weather] })
      )
      const choice = whole.choices[0]!
      assert.strictEqual(choice.finish_reason, "tool_calls")
      const call = choice.message.tool_calls![0]!
      assert.strictEqual(call.type, "function")
      if (call.type !== "function") return
      assert.strictEqual(call.function.name, "get_weather")
      assert.isString(call.function.arguments)
      assert.isObject(JSON.parse(call.function.arguments))

      const chunks = yield* collect(
        yield* promise(() =>
          openai.chat.completions.create({ model: chatModel, messages: ask, tools: [weather], stream: true })
        )
      )
      const streamed = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? []))
      assert.strictEqual(streamed.length, 1)
      assert.strictEqual(streamed[0]!.function!.arguments, call.function.arguments)
      assert.strictEqual(chunks[chunks.length - 1]!.choices[0]!.finish_reason, "tool_calls")

      // the tool's result goes back as a tool message; the model then answers with text
      const followUp = yield* promise(() =>
        openai.chat.completions.create({
          model: chatModel,
          tools: [weather],
          messages: [
            ...ask,
            { role: "assistant", content: null, tool_calls: [call] },
            { role: "tool", tool_call_id: call.id, content: "sunny, 21 C" }
          ]
        })
      )
      assert.strictEqual(followUp.choices[0]!.finish_reason, "stop")
      assert.isAbove(followUp.choices[0]!.message.content!.length, 0)
    })
  )

  it.effect("response_format json_object and json_schema answer JSON", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const mode = yield* promise(() =>
        openai.chat.completions.create({ model: chatModel, messages, response_format: { type: "json_object" } })
      )
      assert.isObject(JSON.parse(mode.choices[0]!.message.content!))
      const schema = { type: "object", properties: { name: { type: "string" } }, required: ["name"] }
      const shaped = yield* promise(() =>
        openai.chat.completions.create({
          model: chatModel,
          messages,
          response_format: { type: "json_schema", json_schema: { name: "person", schema } }
        })
      )
      assert.isString((JSON.parse(shaped.choices[0]!.message.content!) as { name: unknown }).name)
    })
  )

  it.effect("reasoning_effort turns thinking on: it comes back as `reasoning`, streamed in its own chunks", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const whole = yield* promise(() =>
        openai.chat.completions.create({ model: "qwen3", messages, reasoning_effort: "low" })
      )
      const message = whole.choices[0]!.message as { content: string; reasoning?: string }
      assert.isAbove(message.reasoning!.length, 0)
      const chunks = yield* collect(
        yield* promise(() =>
          openai.chat.completions.create({ model: "qwen3", messages, reasoning_effort: "low", stream: true })
        )
      )
      const deltas = chunks.flatMap((c) => c.choices.map((ch) => ch.delta as { content?: string; reasoning?: string }))
      assert.strictEqual(deltas.map((d) => d.reasoning ?? "").join(""), message.reasoning)
      assert.strictEqual(deltas.map((d) => d.content ?? "").join(""), message.content)
      assert.isTrue(deltas.every((d) => d.reasoning === undefined || d.content === undefined))
    })
  )

  it.effect("completions, streamed and not, give the same text", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const whole = yield* promise(() =>
        openai.completions.create({ model: chatModel, prompt: "why is the sky blue?" })
      )
      assert.match(whole.id, /^cmpl-/)
      assert.strictEqual(whole.object, "text_completion")
      assert.strictEqual(whole.choices[0]!.finish_reason, "stop")
      const chunks = yield* collect(
        yield* promise(() =>
          openai.completions.create({
            model: chatModel,
            prompt: "why is the sky blue?",
            stream: true,
            stream_options: { include_usage: true }
          })
        )
      )
      const text = chunks.flatMap((c) => c.choices.map((ch) => ch.text)).join("")
      assert.strictEqual(text, whole.choices[0]!.text)
      assert.strictEqual(chunks[chunks.length - 2]!.choices[0]!.finish_reason, "stop")
      assert.deepStrictEqual(chunks[chunks.length - 1]!.usage, whole.usage)
    })
  )

  it.effect("embeddings as floats and as base64 decode to the same vectors", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const input = ["hello", "world"]
      const floats = yield* promise(() =>
        openai.embeddings.create({ model: embedModel, input, encoding_format: "float" })
      )
      assert.strictEqual(floats.object, "list")
      assert.strictEqual(floats.data.length, 2)
      assert.deepStrictEqual(
        floats.data.map((d) => d.index),
        [0, 1]
      )
      assert.isAbove(floats.usage.prompt_tokens, 0)
      const raw = yield* promise(() =>
        openai.embeddings.create({ model: embedModel, input, encoding_format: "base64" })
      )
      const decoded = raw.data.map((d) => {
        const bytes = Buffer.from(d.embedding as unknown as string, "base64")
        return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4))
      })
      // the client's default (no encoding_format) asks for base64 and decodes it itself
      const byDefault = yield* promise(() => openai.embeddings.create({ model: embedModel, input }))
      floats.data.forEach((d, i) => {
        assert.strictEqual(decoded[i]!.length, d.embedding.length)
        d.embedding.forEach((x, j) => {
          assert.closeTo(decoded[i]![j]!, x, 1e-6)
          assert.closeTo(byDefault.data[i]!.embedding[j]!, x, 1e-6)
        })
      })
      const one = yield* promise(() => openai.embeddings.create({ model: embedModel, input: "hello" }))
      assert.strictEqual(one.data.length, 1)
    })
  )

  it.effect("models: list and retrieve", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const list = yield* promise(async () => {
        const out = []
        for await (const m of openai.models.list()) out.push(m)
        return out
      })
      const llama = list.find((m) => m.id === "llama3.2:latest")
      assert.isDefined(llama)
      assert.strictEqual(llama!.object, "model")
      assert.strictEqual(llama!.owned_by, "library")
      assert.isAbove(llama!.created, 0)
      const one = yield* promise(() => openai.models.retrieve("llama3.2:latest"))
      assert.strictEqual(one.id, "llama3.2:latest")
      assert.strictEqual(one.owned_by, "library")
    })
  )

  it.effect("an unknown model is a 404 NotFoundError everywhere, streamed or not", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const calls: Array<() => Promise<unknown>> = [
        () => openai.chat.completions.create({ model: "nope", messages }),
        () => openai.chat.completions.create({ model: "nope", messages, stream: true }),
        () => openai.completions.create({ model: "nope", prompt: "x" }),
        () => openai.embeddings.create({ model: "nope", input: "x" }),
        () => openai.models.retrieve("nope")
      ]
      for (const call of calls) {
        const error = yield* failure(call)
        assert.instanceOf(error, NotFoundError)
        const e = error as NotFoundError
        assert.strictEqual(e.status, 404)
        assert.strictEqual((e.error as { type: string }).type, "not_found_error")
        assert.strictEqual((e.error as { message: string }).message, "model 'nope' not found")
      }
    })
  )

  it.effect("request ids: a sane x-request-id is echoed, anything else gets a fresh id", () =>
    Effect.gen(function* () {
      const url = yield* GatewayUrl
      const mine = yield* promise(() => fetch(`${url}/v1/models`, { headers: { "x-request-id": "abc-123" } }))
      assert.strictEqual(mine.headers.get("x-sluice-request-id"), "abc-123")
      const odd = yield* promise(() => fetch(`${url}/v1/models`, { headers: { "x-request-id": "<script>" } }))
      assert.match(odd.headers.get("x-sluice-request-id")!, /^[0-9a-f]{32}$/)
      assert.match(odd.headers.get("x-sluice-overhead-ms")!, /^\d+\.\d{2}$/)
    })
  )
})

const midStream = fast({ faults: { midStreamError: 1 } })

layer(gateway(midStream), { excludeTestServices: true })("gateway: OpenAI streams that fail midway", (it) => {
  it.effect("end with an error event and no [DONE]; the client raises an APIError", () =>
    Effect.gen(function* () {
      const openai = yield* client
      const error = yield* failure(async () => {
        for await (const _ of await openai.chat.completions.create({ model: chatModel, messages, stream: true })) {
          // drain
        }
      })
      assert.instanceOf(error, OpenAI.APIError)
      assert.include((error as Error).message, "simulated mid-stream error")
      const url = yield* GatewayUrl
      const text = yield* promise(() =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          body: JSON.stringify({ model: chatModel, messages, stream: true })
        }).then((r) => r.text())
      )
      const all = events(text)
      assert.notInclude(all, "[DONE]")
      assert.deepInclude(JSON.parse(all[all.length - 1]!), {
        error: { message: "simulated mid-stream error", type: "api_error", param: null, code: null }
      })
    })
  )
})

const slowStream = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 200 }))

layer(gateway(slowStream), { excludeTestServices: true })("gateway: OpenAI stream cancellation", (it) => {
  it.effect("a client that disconnects mid-stream cancels the upstream call", () =>
    Effect.gen(function* () {
      const { before, after } = yield* disconnectMidStream("/v1/chat/completions", {
        model: chatModel,
        messages,
        stream: true
      })
      assert.isAbove(after, before)
    })
  )
})
