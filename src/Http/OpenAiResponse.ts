/**
 * Engine answers translated to OpenAI's shapes, as Ollama's `/v1` endpoints send them: `chat.completion` and its
 * `chat.completion.chunk`s, `text_completion`, embedding lists (float or base64 little-endian float32) and model
 * objects. Every answer of one request shares its `id` and `created`; `system_fingerprint` is `fp_ollama`.
 * Tool call arguments go out as a JSON string; thinking goes out as `reasoning`.
 */
import { Clock, Effect, Stream } from "effect"
import type { ChatResponse, ToolCall } from "../Domain/Chat.js"
import type { EmbedResponse } from "../Domain/Embed.js"
import type { GenerateResponse } from "../Domain/Generate.js"
import type { ListModel } from "../Domain/Models.js"

/** What every object of one answer shares. */
export interface Meta {
  readonly id: string
  readonly created: number
}

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
const randomId = (length: number) =>
  Array.from(globalThis.crypto.getRandomValues(new Uint8Array(length)), (b) => alphabet[b % alphabet.length]).join("")

/** A fresh `<prefix>-<random>` id and the current unix time. */
export const meta = (prefix: string): Effect.Effect<Meta> =>
  Effect.map(Clock.currentTimeMillis, (now) => ({ id: `${prefix}-${randomId(24)}`, created: Math.floor(now / 1000) }))

const fingerprint = "fp_ollama"

interface Counts {
  readonly prompt_eval_count?: number
  readonly eval_count?: number
}

export const usageOf = (r: Counts) => {
  const prompt = r.prompt_eval_count ?? 0
  const completion = r.eval_count ?? 0
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}

const finishOf = (doneReason: string | undefined, toolCalls: boolean) =>
  toolCalls ? "tool_calls" : doneReason === "length" ? "length" : "stop"

const toolCallsOf = (calls: ReadonlyArray<ToolCall>) =>
  calls.map((call, i) => ({
    id: call.id ?? `call_${randomId(8)}`,
    index: call.function.index ?? i,
    type: "function" as const,
    function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments) }
  }))

/** A whole chat answer as `chat.completion`. */
export const chatCompletion = (m: Meta, r: ChatResponse) => {
  const calls = r.message.tool_calls ?? []
  return {
    id: m.id,
    object: "chat.completion",
    created: m.created,
    model: r.model,
    system_fingerprint: fingerprint,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: r.message.content,
          ...(r.message.thinking ? { reasoning: r.message.thinking } : {}),
          ...(calls.length > 0 ? { tool_calls: toolCallsOf(calls) } : {})
        },
        finish_reason: finishOf(r.done_reason, calls.length > 0)
      }
    ],
    usage: usageOf(r)
  }
}

const chatChunk = (m: Meta, model: string, delta: object, finish: string | null = null) => ({
  id: m.id,
  object: "chat.completion.chunk",
  created: m.created,
  model,
  system_fingerprint: fingerprint,
  choices: [{ index: 0, delta, finish_reason: finish }]
})

const usageChunk = (m: Meta, object: string, model: string, r: Counts) => ({
  id: m.id,
  object,
  created: m.created,
  model,
  system_fingerprint: fingerprint,
  choices: [],
  usage: usageOf(r)
})

/**
 * Engine chat chunks as `chat.completion.chunk`s: `role` on the first only, reasoning and content in separate
 * chunks, tool calls whole (arguments as a JSON string), then an empty-delta chunk with `finish_reason`, then
 * (include_usage) a `choices: []` chunk with the usage.
 */
export const chatChunks =
  (m: Meta, includeUsage: boolean) =>
  <E, R>(chunks: Stream.Stream<ChatResponse, E, R>): Stream.Stream<object, E, R> =>
    Stream.suspend(() => {
      let first = true
      let calledTools = false
      const delta = (fields: object) => {
        const out = first ? { role: "assistant", ...fields } : fields
        first = false
        return out
      }
      return Stream.mapConcat(chunks, (r): Array<object> => {
        const out: Array<object> = []
        const calls = r.message.tool_calls ?? []
        calledTools ||= calls.length > 0
        if (r.message.thinking) out.push(chatChunk(m, r.model, delta({ reasoning: r.message.thinking })))
        const hasContent = r.message.content !== "" || calls.length > 0
        if (hasContent || (!r.done && !r.message.thinking) || (r.done && first)) {
          const toolCalls = calls.length > 0 ? { tool_calls: toolCallsOf(calls) } : {}
          out.push(chatChunk(m, r.model, delta({ content: r.message.content, ...toolCalls })))
        }
        if (!r.done) return out
        out.push(chatChunk(m, r.model, {}, finishOf(r.done_reason, calledTools)))
        if (includeUsage) out.push(usageChunk(m, "chat.completion.chunk", r.model, r))
        return out
      })
    })

/** A whole generate answer as `text_completion`. */
export const completion = (m: Meta, r: GenerateResponse) => ({
  id: m.id,
  object: "text_completion",
  created: m.created,
  model: r.model,
  system_fingerprint: fingerprint,
  choices: [{ text: r.response, index: 0, logprobs: null, finish_reason: finishOf(r.done_reason, false) }],
  usage: usageOf(r)
})

/** Engine generate chunks as `text_completion` chunks; `finish_reason` rides on the last text chunk. */
export const completionChunks =
  (m: Meta, includeUsage: boolean) =>
  <E, R>(chunks: Stream.Stream<GenerateResponse, E, R>): Stream.Stream<object, E, R> =>
    Stream.mapConcat(chunks, (r): Array<object> => {
      const chunk = {
        id: m.id,
        object: "text_completion",
        created: m.created,
        model: r.model,
        system_fingerprint: fingerprint,
        choices: [
          { text: r.response, index: 0, logprobs: null, finish_reason: r.done ? finishOf(r.done_reason, false) : null }
        ]
      }
      return r.done && includeUsage ? [chunk, usageChunk(m, "text_completion", r.model, r)] : [chunk]
    })

/** A vector as base64 of its little-endian float32 bytes. */
export const base64Of = (vector: ReadonlyArray<number>): string => {
  const view = new DataView(new ArrayBuffer(vector.length * 4))
  vector.forEach((x, i) => view.setFloat32(i * 4, x, true))
  return Buffer.from(view.buffer).toString("base64")
}

/** An embed answer as OpenAI's embedding list. */
export const embeddings = (r: EmbedResponse, encoding: "float" | "base64") => {
  const tokens = r.prompt_eval_count ?? 0
  return {
    object: "list",
    data: r.embeddings.map((vector, index) => ({
      object: "embedding",
      embedding: encoding === "base64" ? base64Of(vector) : vector,
      index
    })),
    model: r.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens }
  }
}

/** `owned_by` is the name's namespace (`library` when it has none). */
const ownerOf = (name: string) => {
  const parts = name.split(":")[0]!.split("/")
  return parts.length > 1 ? parts[parts.length - 2]! : "library"
}

const unix = (timestamp: string | undefined) => {
  const ms = timestamp === undefined ? NaN : Date.parse(timestamp)
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : 0
}

/** One model object. */
export const model = (name: string, modifiedAt: string | undefined) => ({
  id: name,
  object: "model",
  created: unix(modifiedAt),
  owned_by: ownerOf(name)
})

/** `/api/tags` as OpenAI's model list. */
export const models = (list: ReadonlyArray<ListModel>) => ({
  object: "list",
  data: list.map((m) => model(m.name, m.modified_at))
})
