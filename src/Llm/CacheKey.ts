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

/** A copy without absent-equivalent fields (undefined, null, empty arrays). */
const compact = (record: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(record)) {
    if (!isAbsent(value)) out[key] = value
  }
  return out
}

const normaliseOptions = (options: Options | undefined): Record<string, unknown> | undefined => {
  if (options === undefined) return undefined
  const kept = compact(Object.fromEntries(Object.entries(options).filter(([key]) => !performanceOptions.has(key))))
  return Object.keys(kept).length === 0 ? undefined : kept
}

const normaliseFormat = (format: unknown): unknown => (format === "" ? undefined : format)

const normaliseMessage = (message: Message) =>
  compact({
    role: message.role,
    content: message.content,
    images: message.images,
    tool_calls: message.tool_calls,
    tool_name: message.tool_name
  })

/** The fields chat and generate share. */
const common = (request: ChatRequest | GenerateRequest) => ({
  model: normaliseModel(request.model),
  format: normaliseFormat(request.format),
  think: request.think,
  options: normaliseOptions(request.options),
  truncate: request.truncate,
  shift: request.shift,
  logprobs: request.logprobs,
  top_logprobs: request.top_logprobs
})

const normalisers: { readonly [K in CacheKind]: (request: RequestOf[K]) => Record<string, unknown> } = {
  chat: (request) =>
    compact({ ...common(request), messages: request.messages?.map(normaliseMessage), tools: request.tools }),
  generate: (request) =>
    compact({
      ...common(request),
      prompt: request.prompt,
      suffix: request.suffix,
      system: request.system,
      template: request.template,
      raw: request.raw,
      context: request.context,
      images: request.images
    }),
  embed: (request) =>
    compact({
      model: normaliseModel(request.model),
      input: typeof request.input === "string" ? [request.input] : request.input,
      truncate: request.truncate,
      dimensions: request.dimensions,
      options: normaliseOptions(request.options)
    })
}

/** The request reduced to what can change the response, tagged with its kind. */
export const normalise = <K extends CacheKind>(kind: K, request: RequestOf[K]): Record<string, unknown> => ({
  kind,
  ...normalisers[kind](request)
})

/** JSON with object keys sorted at every depth and `undefined` fields dropped. */
export const canonicalJson = (value: unknown): string => JSON.stringify(sortKeys(value))

const sortKeys = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value === null || typeof value !== "object") return value
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value).sort()) {
    const field = (value as Record<string, unknown>)[key]
    if (field !== undefined) out[key] = sortKeys(field)
  }
  return out
}

/** The cache key of a request: `<kind>:<base64url SHA-256 of the canonical normalised request>`. */
export const keyOf = <K extends CacheKind>(kind: K, request: RequestOf[K]): string =>
  // `crypto.hash`: one call, no Hash object per key (Node 20.12+)
  `${kind}:${hash("sha256", canonicalJson(normalise(kind, request)), "base64url")}`
