/**
 * Deterministic text for the simulator: a seeded PRNG, the reply tokens, JSON output for `format`, thinking
 * text, tool calls and the prompt token estimate.
 *
 * The PRNG is hand-written (FNV-1a to hash a string into a seed, mulberry32 to draw from it): ten lines, no
 * dependency, and the same numbers on every platform, which is what reproducible runs need.
 *
 * The same request (model, messages or prompt, system, options.seed, format) always gives the same reply;
 * its length is 8..64 tokens, taken from the hash. A token is a word-ish chunk (" word", "," or "."), and
 * streaming sends one chunk per token.
 *
 * Tool-call rule: when tools are offered and the last message is a user message that contains a tool's
 * function name (the first such tool in the offered order), the reply is one call to that tool with
 * `id` "call_" + 8 [a-z0-9] from the hash, `function.index` 0, and `arguments` holding every property of
 * `parameters.properties`: string -> the last word of the user message (punctuation stripped),
 * integer -> 0..99, number -> 0.0..99.9 (one decimal), boolean -> true, anything else -> null.
 * After a tool result (the last message is not a user message) the model answers with text.
 */
import type { Tool, ToolCall } from "../Domain/Chat.js"

/** FNV-1a (32 bit) of a string. */
export const fnv1a = (text: string, seed = 0x811c9dc5): number => {
  let h = seed >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** mulberry32: a tiny seeded PRNG with uniform floats in [0, 1). */
export const mulberry32 = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const vocabulary = (
  "the a model stream token answer river light quick system data simple value north bright fast signal " +
  "garden stone cloud engine local result simulated ollama request moment steady small large window paper " +
  "silver orange bridge market winter summer echo vector memory queue slot thread careful honest gentle " +
  "between around under over through with about from into across number letter story reason method"
).split(" ")

const thinkingWords = "first consider the question then check what matters and answer briefly".split(" ")

/** Picks a word of the vocabulary. */
const word = (random: () => number): string => vocabulary[Math.floor(random() * vocabulary.length)]!

/** `n` reply tokens: " word" chunks with some commas, the last one a full stop. */
export const replyTokens = (random: () => number, n: number): Array<string> => {
  const tokens: Array<string> = []
  while (tokens.length < n - 1) {
    const w = word(random)
    tokens.push(tokens.length === 0 ? w[0]!.toUpperCase() + w.slice(1) : ` ${w}`)
    if (tokens.length > 1 && tokens.length < n - 1 && random() < 0.06) tokens.push(",")
  }
  tokens.push(".")
  return tokens
}

/** 3..8 thinking tokens. */
export const thinkingTokens = (random: () => number): Array<string> => {
  const n = 3 + Math.floor(random() * 6)
  const tokens: Array<string> = []
  for (let i = 0; i < n; i++) {
    const w = thinkingWords[(i + Math.floor(random() * 3)) % thinkingWords.length]!
    tokens.push(i === 0 ? w[0]!.toUpperCase() + w.slice(1) : ` ${w}`)
  }
  return tokens
}

/** A reply length in 8..64 tokens. */
export const replyLength = (random: () => number): number => 8 + Math.floor(random() * 57)

/** Words of a text (lower case, punctuation dropped); shared by token counts and embeddings. */
export const words = (text: string): Array<string> => text.toLowerCase().match(/[\p{L}\p{N}_']+/gu) ?? []

/** Prompt token estimate: whitespace-separated words, plus 4 per message of template overhead. */
export const promptTokens = (texts: ReadonlyArray<string>): number => {
  let count = 1
  for (const text of texts) count += 4 + countWords(text)
  return count
}

const countWords = (text: string): number => {
  let count = 0
  let inWord = false
  for (let i = 0; i < text.length; i++) {
    const space = text.charCodeAt(i) <= 32
    if (!space && !inWord) count++
    inWord = !space
  }
  return count
}

/** Splits a string into 3..6-character tokens (how a JSON answer is streamed). */
export const chunkString = (text: string, random: () => number): Array<string> => {
  const tokens: Array<string> = []
  for (let i = 0; i < text.length;) {
    const n = 3 + Math.floor(random() * 4)
    tokens.push(text.slice(i, i + n))
    i += n
  }
  return tokens
}

type JsonSchema = { readonly [key: string]: unknown }

/** A value matching a (small subset of) JSON Schema, filled deterministically. */
export const valueFor = (schema: unknown, random: () => number, depth = 0): unknown => {
  if (typeof schema !== "object" || schema === null || depth > 6) return null
  const s = schema as JsonSchema
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[Math.floor(random() * s.enum.length)]
  const type = Array.isArray(s.type) ? s.type[0] : s.type
  if (type === "object" || (type === undefined && typeof s.properties === "object")) {
    const props = (s.properties ?? {}) as JsonSchema
    const out: Record<string, unknown> = {}
    for (const [key, sub] of Object.entries(props)) out[key] = valueFor(sub, random, depth + 1)
    return out
  }
  switch (type) {
    case "string":
      return `${word(random)} ${word(random)}`
    case "integer":
      return Math.floor(random() * 100)
    case "number":
      return Math.floor(random() * 1000) / 10
    case "boolean":
      return random() < 0.5
    case "array":
      return [valueFor(s.items, random, depth + 1)]
    default:
      return null
  }
}

/** The JSON answer for `format`: "json" gives a small fixed-shape object, a schema object a matching value. */
export const jsonAnswer = (format: unknown, random: () => number): string =>
  JSON.stringify(
    typeof format === "object" && format !== null
      ? valueFor(format, random)
      : { answer: `${word(random)} ${word(random)} ${word(random)}`, confidence: Math.floor(random() * 100) / 100 }
  )

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

/** "call_" + 8 [a-z0-9]. */
export const toolCallId = (random: () => number): string => {
  let id = "call_"
  for (let i = 0; i < 8; i++) id += idAlphabet[Math.floor(random() * idAlphabet.length)]
  return id
}

/** The tool call for the last user message, per the rule in the module comment, or undefined. */
export const toolCallFor = (
  tools: ReadonlyArray<Tool>,
  lastUserText: string,
  random: () => number
): ToolCall | undefined => {
  const tool = tools.find((t) => t.function.name !== "" && lastUserText.includes(t.function.name))
  if (tool === undefined) return undefined
  const allWords = lastUserText.match(/[\p{L}\p{N}_'-]+/gu) ?? []
  const lastWord = allWords.length === 0 ? "" : allWords[allWords.length - 1]!
  const props = (tool.function.parameters?.properties ?? {}) as JsonSchema
  const args: Record<string, unknown> = {}
  for (const [key, sub] of Object.entries(props)) args[key] = argumentFor(sub, lastWord, random)
  return { id: toolCallId(random), function: { index: 0, name: tool.function.name, arguments: args } }
}

const argumentFor = (schema: unknown, lastWord: string, random: () => number): unknown => {
  const raw = typeof schema === "object" && schema !== null ? (schema as JsonSchema).type : undefined
  const type = Array.isArray(raw) ? raw[0] : raw
  if (type === "string") return lastWord
  if (type === "integer") return Math.floor(random() * 100)
  if (type === "number") return Math.floor(random() * 1000) / 10
  if (type === "boolean") return true
  return null
}
