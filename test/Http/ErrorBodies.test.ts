/**
 * Error bodies for refused request bodies, fuzzed field by field against the running gateway: every field of every
 * inference body (and the nested ones: messages, content parts, tool calls, tools, options, response_format) gets each
 * junk value its wire Schema refuses, and every required field goes missing. Each answer must be 400 in its family's
 * shape, name the field, and carry no Schema text; Ollama's own sentences where Ollama has one (`model is required`,
 * `invalid input type` on /api/embed), OpenAI's (`Missing required parameter: 'x'.`, `Invalid type for 'x': ...`)
 * on /v1 with `param` and `code`.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import { ChatRequest, Message, Tool, ToolCall } from "../../src/Domain/Chat.js"
import { Options } from "../../src/Domain/Common.js"
import { EmbeddingsRequest, EmbedRequest } from "../../src/Domain/Embed.js"
import { GenerateRequest } from "../../src/Domain/Generate.js"
import { ShowRequest } from "../../src/Domain/Models.js"
import {
  ChatCompletionRequest,
  ChatMessage,
  CompletionRequest,
  EmbeddingRequest,
  ImagePart,
  StreamOptions,
  TextPart,
  ToolCallIn
} from "../../src/Http/OpenAiApi.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import { GatewayUrl, layer as gateway } from "./gateway.js"
import { type Family, refusalOf } from "./refusals.js"

const absent = Symbol("absent")
type Value = unknown

/** `record` with `key` set to `value`, or without `key` when the value is `absent`. */
const set = (record: Record<string, unknown>, key: string, value: Value) => {
  const { [key]: _, ...rest } = record
  return value === absent ? rest : { ...rest, [key]: value }
}

/** Wrong values of every JSON kind, and arrays where strings go (and the reverse). */
const junk: ReadonlyArray<Value> = [42, 1.5, "s", true, [1], ["s"], { k: 1 }, null, [{ k: 1 }]]

interface Target {
  readonly route: string
  readonly family: Family
  readonly schema: Schema.Schema<any, any>
  /** The fields fuzzed, and the path that leads to them (`messages[0].`). */
  readonly fields: ReadonlyArray<string>
  readonly prefix: string
  /** A valid body, with `field` set to `value` (or removed). */
  readonly body: (field: string, value: Value) => unknown
  /** Ollama's fixed sentence for a wrong value in `field`, where Ollama has one. */
  readonly sentence?: (field: string) => string | undefined
}

const keys = (fields: Record<string, unknown>) => Object.keys(fields)
const chatModel = "llama3.2"
const embedModel = "nomic-embed-text"
const user = { role: "user", content: "hi" }

const ollama: ReadonlyArray<Target> = [
  {
    route: "/api/chat",
    family: "ollama",
    schema: ChatRequest,
    fields: keys(ChatRequest.fields),
    prefix: "",
    body: (f, v) => set({ model: chatModel, messages: [user], stream: false }, f, v)
  },
  {
    route: "/api/chat",
    family: "ollama",
    schema: ChatRequest,
    fields: keys(Message.fields),
    prefix: "messages[0].",
    body: (f, v) => ({ model: chatModel, messages: [set(user, f, v)], stream: false })
  },
  {
    route: "/api/chat",
    family: "ollama",
    schema: ChatRequest,
    fields: keys(ToolCall.fields.function.fields),
    prefix: "messages[0].tool_calls[0].function.",
    body: (f, v) => ({
      model: chatModel,
      messages: [
        { role: "assistant", content: "", tool_calls: [{ function: set({ name: "f", arguments: {} }, f, v) }] }
      ],
      stream: false
    })
  },
  {
    route: "/api/chat",
    family: "ollama",
    schema: ChatRequest,
    fields: keys(Tool.fields.function.fields),
    prefix: "tools[0].function.",
    body: (f, v) => ({
      model: chatModel,
      messages: [user],
      tools: [{ type: "function", function: set({ name: "f" }, f, v) }],
      stream: false
    })
  },
  {
    route: "/api/chat",
    family: "ollama",
    schema: ChatRequest,
    fields: keys(Options.fields),
    prefix: "options.",
    body: (f, v) => ({ model: chatModel, messages: [user], options: set({}, f, v), stream: false })
  },
  {
    route: "/api/generate",
    family: "ollama",
    schema: GenerateRequest,
    fields: keys(GenerateRequest.fields),
    prefix: "",
    body: (f, v) => set({ model: chatModel, prompt: "hi", stream: false }, f, v)
  },
  {
    route: "/api/embed",
    family: "ollama",
    schema: EmbedRequest,
    fields: keys(EmbedRequest.fields),
    prefix: "",
    body: (f, v) => set({ model: embedModel, input: "hi" }, f, v),
    sentence: (f) => (f === "input" ? "invalid input type" : undefined)
  },
  {
    route: "/api/embeddings",
    family: "ollama",
    schema: EmbeddingsRequest,
    fields: keys(EmbeddingsRequest.fields),
    prefix: "",
    body: (f, v) => set({ model: embedModel, prompt: "hi" }, f, v)
  },
  {
    route: "/api/show",
    family: "ollama",
    schema: ShowRequest,
    fields: keys(ShowRequest.fields),
    prefix: "",
    body: (f, v) => set({ model: chatModel }, f, v)
  }
]

const chatCompletion = (f: string, v: Value, base: Record<string, unknown> = { model: chatModel, messages: [user] }) =>
  set(base, f, v)

const openai: ReadonlyArray<Target> = [
  {
    route: "/v1/chat/completions",
    family: "openai",
    schema: ChatCompletionRequest,
    fields: keys(ChatCompletionRequest.fields),
    prefix: "",
    body: (f, v) => chatCompletion(f, v)
  },
  {
    route: "/v1/chat/completions",
    family: "openai",
    schema: ChatCompletionRequest,
    fields: keys(ChatMessage.fields),
    prefix: "messages[0].",
    body: (f, v) => ({ model: chatModel, messages: [set(user, f, v)] })
  },
  {
    route: "/v1/chat/completions",
    family: "openai",
    schema: ChatCompletionRequest,
    fields: keys(TextPart.fields),
    prefix: "messages[0].content[0].",
    body: (f, v) => ({
      model: chatModel,
      messages: [{ role: "user", content: [set({ type: "text", text: "hi" }, f, v)] }]
    })
  },
  {
    route: "/v1/chat/completions",
    family: "openai",
    schema: ChatCompletionRequest,
    fields: keys(ImagePart.fields.image_url.members[1].fields),
    prefix: "messages[0].content[0].image_url.",
    body: (f, v) => ({
      model: chatModel,
      messages: [
        { role: "user", content: [{ type: "image_url", image_url: set({ url: "data:image/png;base64,AAAA" }, f, v) }] }
      ]
    })
  },
  {
    route: "/v1/chat/completions",
    family: "openai",
    schema: ChatCompletionRequest,
    fields: keys(ToolCallIn.fields.function.fields),
    prefix: "messages[0].tool_calls[0].function.",
    body: (f, v) => ({
      model: chatModel,
      messages: [{ role: "assistant", tool_calls: [{ id: "c1", function: set({ name: "f", arguments: "{}" }, f, v) }] }]
    })
  },
  {
    route: "/v1/chat/completions",
    family: "openai",
    schema: ChatCompletionRequest,
    fields: ["type", "json_schema"],
    prefix: "response_format.",
    body: (f, v) => chatCompletion("response_format", set({ type: "json_schema", json_schema: { schema: {} } }, f, v))
  },
  {
    route: "/v1/chat/completions",
    family: "openai",
    schema: ChatCompletionRequest,
    fields: keys(StreamOptions.fields),
    prefix: "stream_options.",
    body: (f, v) => chatCompletion("stream_options", set({}, f, v))
  },
  {
    route: "/v1/completions",
    family: "openai",
    schema: CompletionRequest,
    fields: keys(CompletionRequest.fields),
    prefix: "",
    body: (f, v) => set({ model: chatModel, prompt: "hi" }, f, v)
  },
  {
    route: "/v1/embeddings",
    family: "openai",
    schema: EmbeddingRequest,
    fields: keys(EmbeddingRequest.fields),
    prefix: "",
    body: (f, v) => set({ model: embedModel, input: "hi" }, f, v)
  }
]

interface Case {
  readonly target: Target
  readonly body: unknown
  /** The field's full path (`messages[0].content`). */
  readonly path: string
  readonly missing: boolean
}

const refuses = (schema: Schema.Schema<any, any>, body: unknown) =>
  Either.isLeft(Schema.decodeUnknownEither(schema, { onExcessProperty: "preserve" })(body))

/** Every body of `target` its Schema refuses: each junk value in each field, and each required field left out. */
const casesOf = (target: Target): ReadonlyArray<Case> =>
  target.fields.flatMap((field) =>
    [...junk, absent].flatMap((value): ReadonlyArray<Case> => {
      const body = target.body(field, value)
      return refuses(target.schema, body)
        ? [{ target, body, path: `${target.prefix}${field}`, missing: value === absent }]
        : []
    })
  )

/** Whether `found` is `path` or lies inside it (`messages[0]` inside `messages`). */
const within = (found: string, path: string) =>
  found === path || found.startsWith(`${path}[`) || found.startsWith(`${path}.`)

const ollamaType = /^invalid (?:type|value) for "([^"]+)": expected .+, got .+$/
const ollamaMissing = /^(.+) is required$/
const openAiType = /^Invalid type for '([^']+)': expected .+, but got .+ instead\.$/
const openAiValue = /^Invalid value: .+\. Supported values are: .+\.$/

/** What is wrong with the answer to `c`, if anything (an empty list when it is right). */
const problemsOf = (c: Case, status: number, text: string): ReadonlyArray<string> => {
  const what = `${c.target.route} ${JSON.stringify(c.body)} -> ${status} ${text}`
  if (status !== 400) return [`status ${status}: ${what}`]
  const refusal = refusalOf(c.target.family, status, text, what)
  const sentence = c.target.sentence?.(c.path)
  if (c.target.family === "ollama") {
    if (sentence !== undefined) return refusal.message === sentence ? [] : [`not "${sentence}": ${what}`]
    if (c.missing) return refusal.message === `${c.path} is required` ? [] : [`not "${c.path} is required": ${what}`]
    // a junk object inside the field may lack a required field of its own (`messages[0].role is required`)
    const named = ollamaType.exec(refusal.message)?.[1] ?? ollamaMissing.exec(refusal.message)?.[1]
    return named !== undefined && within(named, c.path) ? [] : [`does not name ${c.path}: ${what}`]
  }
  if (c.missing)
    return refusal.message === `Missing required parameter: '${c.path}'.` &&
      refusal.param === c.path &&
      refusal.code === "missing_required_parameter"
      ? []
      : [`not a missing-parameter envelope for ${c.path}: ${what}`]
  const param = refusal.param ?? ""
  const phrased =
    (refusal.code === "invalid_type" && openAiType.exec(refusal.message)?.[1] === param) ||
    (refusal.code === "invalid_value" && openAiValue.test(refusal.message)) ||
    (refusal.code === "missing_required_parameter" && refusal.message === `Missing required parameter: '${param}'.`)
  return within(param, c.path) && phrased ? [] : [`not an envelope naming ${c.path}: ${what}`]
}

const post = (route: string, body: string) =>
  Effect.flatMap(GatewayUrl, (url) =>
    Effect.promise(async () => {
      const response = await fetch(`${url}${route}`, { method: "POST", body })
      return { status: response.status, text: await response.text() }
    })
  )

const answer = (route: string, body: unknown) => post(route, JSON.stringify(body))

layer(gateway(fast()), { excludeTestServices: true })("gateway: error bodies for refused request bodies", (it) => {
  for (const route of [...new Set([...ollama, ...openai].map((t) => t.route))]) {
    const targets = [...ollama, ...openai].filter((t) => t.route === route)
    it.effect(`${route}: every wrong type and missing field is a 400 naming the field, in the family's words`, () =>
      Effect.gen(function* () {
        const cases = targets.flatMap(casesOf)
        assert.isAbove(cases.length, 5, route)
        const problems = yield* Effect.forEach(
          cases,
          (c) => Effect.map(answer(route, c.body), ({ status, text }) => problemsOf(c, status, text)),
          { concurrency: 4 }
        )
        assert.deepStrictEqual(problems.flat(), [])
      })
    )

    it.effect(`${route}: a body that is not a JSON object is a 400 without Schema text`, () =>
      Effect.gen(function* () {
        const family = targets[0]!.family
        for (const body of ["[1,2,3]", "42", '"hi"', "null", "true"]) {
          const { status, text } = yield* post(route, body)
          assert.strictEqual(status, 400, `${route} ${body}: ${text}`)
          const refusal = refusalOf(family, status, text, `${route} ${body}: ${text}`)
          if (family === "ollama") assert.match(refusal.message, /^invalid request body: expected a JSON object, got /)
          else assert.match(refusal.message, /^Invalid type for the request body: expected an object, but got /)
        }
      })
    )
  }

  it.effect("the exact words: Ollama's sentences on /api, OpenAI's envelope on /v1", () =>
    Effect.gen(function* () {
      const ollamaError = (route: string, body: unknown) =>
        Effect.map(answer(route, body), ({ status, text }) => ({ status, body: JSON.parse(text) as unknown }))
      assert.deepStrictEqual(yield* ollamaError("/api/chat", { messages: [user] }), {
        status: 400,
        body: { error: "model is required" }
      })
      assert.deepStrictEqual(yield* ollamaError("/api/embed", { model: embedModel, input: [1, 2] }), {
        status: 400,
        body: { error: "invalid input type" }
      })
      assert.deepStrictEqual(yield* ollamaError("/api/embed", { model: embedModel, input: { text: "hi" } }), {
        status: 400,
        body: { error: "invalid input type" }
      })
      assert.deepStrictEqual(yield* ollamaError("/api/chat", { model: chatModel, messages: "hi" }), {
        status: 400,
        body: { error: 'invalid type for "messages": expected an array of objects, got a string' }
      })
      assert.deepStrictEqual(yield* ollamaError("/api/generate", { model: chatModel, prompt: 42 }), {
        status: 400,
        body: { error: 'invalid type for "prompt": expected a string, got an integer' }
      })
      assert.deepStrictEqual(
        yield* ollamaError("/api/chat", { model: chatModel, messages: [{ role: "user", content: ["a"] }] }),
        { status: 400, body: { error: 'invalid type for "messages[0].content": expected a string, got an array' } }
      )
      assert.deepStrictEqual(yield* ollamaError("/api/chat", [1, 2, 3]), {
        status: 400,
        body: { error: "invalid request body: expected a JSON object, got an array" }
      })

      const envelope = (message: string, param: string | null, code: string) => ({
        status: 400,
        body: { error: { message, type: "invalid_request_error", param, code } }
      })
      assert.deepStrictEqual(
        yield* ollamaError("/v1/chat/completions", { model: chatModel, messages: [{ role: "user", content: 42 }] }),
        envelope(
          "Invalid type for 'messages[0].content': expected one of a string or an array of objects, but got an integer instead.",
          "messages[0].content",
          "invalid_type"
        )
      )
      assert.deepStrictEqual(
        yield* ollamaError("/v1/chat/completions", { model: chatModel, messages: [{ role: "bot", content: "hi" }] }),
        envelope(
          "Invalid value: 'bot'. Supported values are: 'system', 'developer', 'user', 'assistant', and 'tool'.",
          "messages[0].role",
          "invalid_value"
        )
      )
      assert.deepStrictEqual(
        yield* ollamaError("/v1/chat/completions", {
          model: chatModel,
          messages: [{ role: "user", content: [{ type: "text", text: 3 }] }]
        }),
        envelope(
          "Invalid type for 'messages[0].content[0].text': expected a string, but got an integer instead.",
          "messages[0].content[0].text",
          "invalid_type"
        )
      )
      assert.deepStrictEqual(
        yield* ollamaError("/v1/chat/completions", { model: chatModel }),
        envelope("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
      )
      assert.deepStrictEqual(
        yield* ollamaError("/v1/chat/completions", { model: chatModel, messages: [user], max_tokens: 1.5 }),
        envelope(
          "Invalid type for 'max_tokens': expected an integer, but got a decimal number instead.",
          "max_tokens",
          "invalid_type"
        )
      )
      assert.deepStrictEqual(
        yield* ollamaError("/v1/completions", { model: chatModel, prompt: ["a", "b"] }),
        envelope("Invalid type for 'prompt': expected a string, but got an array instead.", "prompt", "invalid_type")
      )
      assert.deepStrictEqual(
        yield* ollamaError("/v1/embeddings", { input: "hi" }),
        envelope("Missing required parameter: 'model'.", "model", "missing_required_parameter")
      )
    })
  )
})
