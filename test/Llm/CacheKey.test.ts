import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, FastCheck } from "effect"
import { hash } from "node:crypto"
import { ChatRequest, type Message } from "../../src/Domain/Chat.js"
import type { Options } from "../../src/Domain/Common.js"
import { EmbedRequest } from "../../src/Domain/Embed.js"
import { GenerateRequest } from "../../src/Domain/Generate.js"
import {
  type CacheKind,
  canonicalJson,
  keyOf,
  normaliseModel,
  performanceOptions,
  type RequestOf
} from "../../src/Llm/CacheKey.js"

const chat: ChatRequest = {
  model: "llama3.2",
  messages: [
    { role: "system", content: "be brief" },
    { role: "user", content: "hi" }
  ],
  options: { temperature: 0.2, seed: 7, num_ctx: 4096 },
  format: { type: "object", properties: { a: { type: "string" } } }
}

/** JSON.stringify of a copy with every object's keys inserted in sorted order. */
const sortedJson = (value: unknown): string => JSON.stringify(sortedCopy(value))

const sortedCopy = (value: unknown): unknown =>
  Array.isArray(value)
    ? value.map(sortedCopy)
    : typeof value === "object" && value !== null
      ? Object.fromEntries(
          Object.keys(value)
            .sort()
            .map((key) => [key, sortedCopy((value as Record<string, unknown>)[key])])
        )
      : value

/**
 * The key's definition, written plainly (the module's doc comment in code): the request reduced to what can change
 * the response, absent-equivalent fields dropped, as sorted JSON. CacheKey.ts writes the same text in one pass.
 */
const isAbsent = (value: unknown) =>
  value === undefined || value === null || (Array.isArray(value) && value.length === 0)
const compact = (record: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(record).filter(([, value]) => !isAbsent(value)))
const options = (o: Options | undefined) => {
  const kept = compact(Object.fromEntries(Object.entries(o ?? {}).filter(([key]) => !performanceOptions.has(key))))
  return Object.keys(kept).length === 0 ? undefined : kept
}
const message = (m: Message) =>
  compact({ role: m.role, content: m.content, images: m.images, tool_calls: m.tool_calls, tool_name: m.tool_name })
const common = (r: ChatRequest | GenerateRequest) => ({
  model: normaliseModel(r.model),
  format: r.format === "" ? undefined : r.format,
  think: r.think,
  options: options(r.options),
  truncate: r.truncate,
  shift: r.shift,
  logprobs: r.logprobs,
  top_logprobs: r.top_logprobs
})
const definition: { readonly [K in CacheKind]: (r: RequestOf[K]) => Record<string, unknown> } = {
  chat: (r) => compact({ ...common(r), messages: r.messages?.map(message), tools: r.tools }),
  generate: (r) =>
    compact({
      ...common(r),
      prompt: r.prompt,
      suffix: r.suffix,
      system: r.system,
      template: r.template,
      raw: r.raw,
      context: r.context,
      images: r.images
    }),
  embed: (r) =>
    compact({
      model: normaliseModel(r.model),
      input: typeof r.input === "string" ? [r.input] : r.input,
      truncate: r.truncate,
      dimensions: r.dimensions,
      options: options(r.options)
    })
}
const definedKey = <K extends CacheKind>(kind: K, request: RequestOf[K]) =>
  `${kind}:${hash("sha256", sortedJson({ kind, ...definition[kind](request) }), "base64url")}`

/** Keys written by the version before the one-pass writer (same request, same key: Redis entries stay shared). */
const PINNED_CHAT = "chat:lu0xTQTZlLt2RZx0ZsE-6LmyW8Runk6mD8G2lmaZWmA"
const PINNED_EMBED = "embed:zwODSUI0mwYW-u0f3Uw5CI2s6Ald1sP4DQYcI3ngdGY"

describe("CacheKey", () => {
  it("normalises model names", () => {
    assert.strictEqual(normaliseModel("Llama3.2"), "llama3.2:latest")
    assert.strictEqual(normaliseModel("llama3.2:1b"), "llama3.2:1b")
    assert.strictEqual(normaliseModel("registry.local:5000/team/qwen"), "registry.local:5000/team/qwen:latest")
  })

  it("writes canonical JSON with sorted keys at every depth", () => {
    assert.strictEqual(
      canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: undefined } }),
      '{"a":{"d":[2,{"y":2,"z":1}]},"b":1}'
    )
  })

  it("writes what JSON.stringify writes for a key-sorted copy, for any JSON value", () => {
    FastCheck.assert(FastCheck.property(FastCheck.jsonValue(), (value) => canonicalJson(value) === sortedJson(value)))
  })

  it("keys every request as its definition does (random chat, generate and embed requests)", () => {
    const same =
      <K extends CacheKind>(kind: K) =>
      (request: RequestOf[K]) =>
        keyOf(kind, request) === definedKey(kind, request)
    FastCheck.assert(FastCheck.property(Arbitrary.make(ChatRequest), same("chat")))
    FastCheck.assert(FastCheck.property(Arbitrary.make(GenerateRequest), same("generate")))
    FastCheck.assert(FastCheck.property(Arbitrary.make(EmbedRequest), same("embed")))
  })

  it("keeps the keys earlier versions wrote (shared cache entries stay valid across an upgrade)", () => {
    assert.strictEqual(keyOf("chat", chat), PINNED_CHAT)
    assert.strictEqual(keyOf("embed", { model: "nomic-embed-text", input: ["a", "b"], truncate: true }), PINNED_EMBED)
  })

  it("is short and does not depend on object key order", () => {
    const reordered: ChatRequest = {
      format: { properties: { a: { type: "string" } }, type: "object" },
      options: { num_ctx: 4096, seed: 7, temperature: 0.2 },
      messages: [
        { content: "be brief", role: "system" },
        { content: "hi", role: "user" }
      ],
      model: "llama3.2"
    }
    assert.strictEqual(keyOf("chat", reordered), keyOf("chat", chat))
    assert.isBelow(keyOf("chat", chat).length, 64)
  })

  it("ignores stream, keep_alive, performance options and the :latest tag", () => {
    const base = keyOf("chat", chat)
    assert.strictEqual(keyOf("chat", { ...chat, stream: true }), base)
    assert.strictEqual(keyOf("chat", { ...chat, stream: false, keep_alive: "5m" }), base)
    assert.strictEqual(keyOf("chat", { ...chat, options: { ...chat.options, num_thread: 8, num_gpu: 99 } }), base)
    assert.strictEqual(keyOf("chat", { ...chat, options: { ...chat.options, use_mmap: false, num_batch: 64 } }), base)
    assert.strictEqual(keyOf("chat", { ...chat, model: "llama3.2:latest" }), base)
    assert.strictEqual(keyOf("chat", { ...chat, model: "LLAMA3.2" }), base)
  })

  it("changes with anything that changes the output", () => {
    const base = keyOf("chat", chat)
    const variants: ReadonlyArray<ChatRequest> = [
      { ...chat, options: { ...chat.options, temperature: 0.3 } },
      { ...chat, options: { ...chat.options, seed: 8 } },
      { ...chat, options: { ...chat.options, num_ctx: 8192 } },
      { ...chat, options: { ...chat.options, stop: ["\n"] } },
      { ...chat, format: "json" },
      { ...chat, tools: [{ type: "function", function: { name: "now" } }] },
      { ...chat, messages: [{ role: "user", content: "hello" }] },
      { ...chat, think: true },
      { ...chat, model: "llama3.2:1b" }
    ]
    for (const variant of variants) assert.notStrictEqual(keyOf("chat", variant), base)
  })

  it("treats absent-equivalent values alike", () => {
    const plain: ChatRequest = { model: "m", messages: [{ role: "user", content: "x" }] }
    const base = keyOf("chat", plain)
    assert.strictEqual(keyOf("chat", { ...plain, format: "" }), base)
    assert.strictEqual(keyOf("chat", { ...plain, tools: [] }), base)
    assert.strictEqual(keyOf("chat", { ...plain, options: { num_thread: 4 } }), base)
    assert.strictEqual(keyOf("chat", { model: "m", messages: [{ role: "user", content: "x", images: [] }] }), base)
  })

  it("keys generate and embed requests, and keeps kinds apart", () => {
    const generate: GenerateRequest = { model: "m", prompt: "x", system: "s" }
    assert.strictEqual(
      keyOf("generate", { system: "s", prompt: "x", model: "m:latest", stream: false }),
      keyOf("generate", generate)
    )
    assert.notStrictEqual(keyOf("generate", { ...generate, suffix: "y" }), keyOf("generate", generate))
    assert.notStrictEqual(keyOf("generate", { ...generate, raw: true }), keyOf("generate", generate))
    assert.strictEqual(keyOf("embed", { model: "e", input: "a" }), keyOf("embed", { model: "e", input: ["a"] }))
    assert.notStrictEqual(
      keyOf("embed", { model: "e", input: "a", dimensions: 64 }),
      keyOf("embed", { model: "e", input: "a" })
    )
    assert.notStrictEqual(
      keyOf("embed", { model: "e", input: "a", truncate: false }),
      keyOf("embed", { model: "e", input: "a" })
    )
    assert.notStrictEqual(keyOf("embed", { model: "m", input: "x" }), keyOf("generate", { model: "m", prompt: "x" }))
    assert.isTrue(keyOf("embed", { model: "e" }).startsWith("embed:"))
  })
})
