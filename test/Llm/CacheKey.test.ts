import { assert, describe, it } from "@effect/vitest"
import type { ChatRequest } from "../../src/Domain/Chat.js"
import type { GenerateRequest } from "../../src/Domain/Generate.js"
import { canonicalJson, keyOf, normaliseModel } from "../../src/Llm/CacheKey.js"

const chat: ChatRequest = {
  model: "llama3.2",
  messages: [
    { role: "system", content: "be brief" },
    { role: "user", content: "hi" }
  ],
  options: { temperature: 0.2, seed: 7, num_ctx: 4096 },
  format: { type: "object", properties: { a: { type: "string" } } }
}

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
