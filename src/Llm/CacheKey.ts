/**
 * The exact-match key of the response cache: a SHA-256 of the canonical JSON of the normalised request.
 *
 * Normalisation keeps only what can change the response:
 * - the kind (chat, generate, embed) and the model, lower case with ":latest" added when there is no tag;
 * - chat: messages (role, content, images, tool_calls, tool_name), tools, format, think;
 *   generate: prompt, suffix, system, template, raw, context, images, format, think;
 *   both: truncate, shift, logprobs, top_logprobs (they change what the server returns on long or scored input);
 * - embed: input (a lone string counts as a one-element array: the response is the same), truncate, dimensions;
 * - options, minus the ones that only change speed or placement (`performanceOptions`). This is a deny list on
 *   purpose: an option Sluice does not know about (a newer sampler) stays in the key, so it can cost a miss but
 *   never serve a wrong answer.
 * Dropped: stream (the cache keeps stream and unary entries apart itself), keep_alive, tool_call_id, thinking
 * of past messages, and absent-equivalent values (null, `format: ""`, empty images, tool_calls, tools, options).
 * Object key order never matters: the JSON is written with sorted keys.
 */
import { hash } from "node:crypto"
import type { ChatRequest, Message } from "../Domain/Chat.js"
import type { Options } from "../Domain/Common.js"
import type { EmbedRequest } from "../Domain/Embed.js"
import type { GenerateRequest } from "../Domain/Generate.js"
import { normalizeName } from "../Domain/ModelName.js"

/** What kind of call a key is for. */
export type CacheKind = "chat" | "generate" | "embed"

/** The request type of each kind. */
export interface RequestOf {
  readonly chat: ChatRequest
  readonly generate: GenerateRequest
  readonly embed: EmbedRequest
}

/** Options that change speed, memory or device placement but never the output. */
export const performanceOptions: ReadonlySet<string> = new Set([
  "num_thread",
  "num_gpu",
  "num_batch",
  "use_mmap",
  "use_mlock",
  "main_gpu",
  "low_vram",
  "numa",
  "f16_kv",
  "vocab_only"
])

/** `Llama3.2` -> `llama3.2:latest` (Ollama's own comparison; shared with backend choice). */
export const normaliseModel = normalizeName

const isAbsent = (value: unknown): boolean =>
  value === undefined || value === null || (Array.isArray(value) && value.length === 0)

/** A top-level field's JSON, or undefined when it is absent-equivalent (dropped from the key). */
const present = (value: unknown): string | undefined => (isAbsent(value) ? undefined : write(value))

/** One field of a key: its name and its JSON in a value (undefined: absent, left out). */
type Field<R> = readonly [name: string, text: (value: R) => string | undefined]

/** The fields sorted by name (no name here starts with a digit), their names written as JSON once. */
const inOrder = <R>(fields: ReadonlyArray<Field<R>>): ReadonlyArray<Field<R>> =>
  [...fields].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, text]) => [JSON.stringify(name), text])

/** `{"a":1,...}` from the fields of `value` (in order, names as JSON). */
const fieldsText = <R>(fields: ReadonlyArray<Field<R>>, value: R): string => {
  let out = "{"
  for (const [name, text] of fields) {
    const field = text(value)
    if (field !== undefined) out += (out.length === 1 ? "" : ",") + name + ":" + field
  }
  return out + "}"
}

/** Options minus `performanceOptions` and absent values; undefined when nothing is left. */
const optionsText = (options: Options | undefined): string | undefined => {
  if (options === undefined || options === null) return undefined
  const record = options as Record<string, unknown>
  let out = "{"
  for (const key of sortedKeys(record)) {
    const text = performanceOptions.has(key) ? undefined : present(record[key])
    if (text !== undefined) out += (out.length === 1 ? "" : ",") + JSON.stringify(key) + ":" + text
  }
  return out.length === 1 ? undefined : out + "}"
}

const messageFields = inOrder<Message>([
  ["role", (m) => present(m.role)],
  ["content", (m) => present(m.content)],
  ["images", (m) => present(m.images)],
  ["tool_calls", (m) => present(m.tool_calls)],
  ["tool_name", (m) => present(m.tool_name)]
])

const messagesText = (messages: ReadonlyArray<Message> | undefined): string | undefined => {
  if (messages === undefined || messages === null || messages.length === 0) return undefined
  let out = "["
  for (let i = 0; i < messages.length; i++) out += (i === 0 ? "" : ",") + fieldsText(messageFields, messages[i]!)
  return out + "]"
}

/** The fields chat and generate share. */
const common: ReadonlyArray<Field<ChatRequest | GenerateRequest>> = [
  ["model", (r) => present(normaliseModel(r.model))],
  ["format", (r) => present(r.format === "" ? undefined : r.format)],
  ["think", (r) => present(r.think)],
  ["options", (r) => optionsText(r.options)],
  ["truncate", (r) => present(r.truncate)],
  ["shift", (r) => present(r.shift)],
  ["logprobs", (r) => present(r.logprobs)],
  ["top_logprobs", (r) => present(r.top_logprobs)]
]

const fieldsOf: { readonly [K in CacheKind]: ReadonlyArray<Field<RequestOf[K]>> } = {
  chat: [...common, ["messages", (r) => messagesText(r.messages)], ["tools", (r) => present(r.tools)]],
  generate: [
    ...common,
    ["prompt", (r) => present(r.prompt)],
    ["suffix", (r) => present(r.suffix)],
    ["system", (r) => present(r.system)],
    ["template", (r) => present(r.template)],
    ["raw", (r) => present(r.raw)],
    ["context", (r) => present(r.context)],
    ["images", (r) => present(r.images)]
  ],
  embed: [
    ["model", (r) => present(normaliseModel(r.model))],
    ["input", (r) => (typeof r.input === "string" ? `[${JSON.stringify(r.input)}]` : present(r.input))],
    ["truncate", (r) => present(r.truncate)],
    ["dimensions", (r) => present(r.dimensions)],
    ["options", (r) => optionsText(r.options)]
  ]
}

/** Each kind's fields with `kind` itself, in order. */
const keyFields: { readonly [K in CacheKind]: ReadonlyArray<Field<RequestOf[K]>> } = {
  chat: inOrder([...fieldsOf.chat, ["kind", () => '"chat"']]),
  generate: inOrder([...fieldsOf.generate, ["kind", () => '"generate"']]),
  embed: inOrder([...fieldsOf.embed, ["kind", () => '"embed"']])
}

/**
 * The canonical JSON of the request reduced to what can change the response, tagged with its kind: written field
 * by field in sorted order, with no normalised copy of the request in between (building that copy cost more than
 * the hash).
 */
export const canonicalRequest = <K extends CacheKind>(kind: K, request: RequestOf[K]): string =>
  fieldsText(keyFields[kind], request)

/**
 * JSON with object keys sorted at every depth and `undefined` fields dropped: the text `JSON.stringify` writes for a
 * key-sorted copy, written in one pass without the copy (it was most of the key's cost per call). Written here
 * because JSON.stringify has no key order option and the canonical-JSON libraries (RFC 8785) format numbers
 * differently, which would change every key, shared Redis keys included.
 */
export const canonicalJson = (value: unknown): string => write(value) as string

const write = (value: unknown): string | undefined => {
  // strings, numbers, booleans and null as JSON.stringify writes them; undefined, functions and symbols: nothing
  if (typeof value !== "object" || value === null) return JSON.stringify(value)
  if (Array.isArray(value)) {
    let out = "["
    for (let i = 0; i < value.length; i++) out += (i === 0 ? "" : ",") + (write(value[i]) ?? "null")
    return out + "]"
  }
  // the same loop as optionsText's, kept apart: one shared loop taking a callback measured ~30 % slower per key
  const record = value as Record<string, unknown>
  let out = "{"
  for (const key of sortedKeys(record)) {
    const field = write(record[key])
    if (field !== undefined) out += (out.length === 1 ? "" : ",") + JSON.stringify(key) + ":" + field
  }
  return out + "}"
}

/**
 * The keys in the order JSON.stringify writes a copy made by inserting them sorted: sorted, except that
 * integer-like keys ("0", "12") come first in numeric order, as in every JS object. Request fields rarely start with
 * a digit, so the object that gives that order is built only when one does.
 */
const sortedKeys = (record: Record<string, unknown>): ReadonlyArray<string> => {
  const keys = Object.keys(record).sort()
  if (!keys.some((key) => key.charCodeAt(0) >= 48 && key.charCodeAt(0) <= 57)) return keys
  const order: Record<string, true> = Object.create(null)
  for (const key of keys) order[key] = true
  return Object.keys(order)
}

/** The cache key of a request: `<kind>:<base64url SHA-256 of the canonical normalised request>`. */
export const keyOf = <K extends CacheKind>(kind: K, request: RequestOf[K]): string =>
  // `crypto.hash`: one call, no Hash object per key (Node 20.12+)
  `${kind}:${hash("sha256", canonicalRequest(kind, request), "base64url")}`
