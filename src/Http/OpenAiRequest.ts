/**
 * OpenAI request bodies translated to the engine's Ollama-shaped requests, as Ollama's `/v1` middleware does:
 * `max_tokens` (or `max_completion_tokens`) becomes `num_predict`, a missing `temperature` or `top_p` is 1.0 (OpenAI's
 * default, not Ollama's), `stop` becomes a list, `response_format` becomes `format`, `reasoning_effort` becomes
 * `think`. Content parts are merged into one message: the text parts joined by newlines, the `image_url` data URIs
 * as base64 `images` (an http(s) URL is a 400, as with Ollama). Assistant tool calls carry their arguments as a
 * JSON string, which becomes an object; a tool result gets its `tool_name` from the call it answers.
 */
import { Effect } from "effect"
import type { ChatRequest, Message, ToolCall } from "../Domain/Chat.js"
import type { Options } from "../Domain/Common.js"
import type { EmbedRequest } from "../Domain/Embed.js"
import type { GenerateRequest } from "../Domain/Generate.js"
import { BadRequest } from "./Guard.js"
import type {
  ChatCompletionRequest,
  ChatMessage,
  CompletionRequest,
  ContentPart,
  EmbeddingRequest,
  ResponseFormat,
  Sampling
} from "./OpenAiApi.js"

const refuse = (reason: string) => Effect.fail(new BadRequest({ reason, status: 400 }))

/** Sampling options with OpenAI's defaults (temperature and top_p 1.0). */
export const optionsOf = (r: Sampling, maxTokens: number | null | undefined): Options => {
  const options: Record<string, unknown> = { temperature: r.temperature ?? 1, top_p: r.top_p ?? 1 }
  if (maxTokens !== undefined && maxTokens !== null) options.num_predict = maxTokens
  if (r.seed !== undefined) options.seed = r.seed
  if (r.stop !== undefined) options.stop = typeof r.stop === "string" ? [r.stop] : r.stop
  if (r.frequency_penalty !== undefined) options.frequency_penalty = r.frequency_penalty
  if (r.presence_penalty !== undefined) options.presence_penalty = r.presence_penalty
  return options as Options
}

const imageTypes = /^data:(?:image\/(?:jpeg|jpg|png|webp))?;base64,/
const base64 = /^[A-Za-z0-9+/]*={0,2}$/

/** A data URI's base64 payload. */
const imageOf = (part: Extract<ContentPart, { type: "image_url" }>) => {
  const url = typeof part.image_url === "string" ? part.image_url : part.image_url.url
  if (/^https?:\/\//i.test(url))
    return refuse("image URLs are not currently supported, please use base64 encoded data instead")
  const prefix = imageTypes.exec(url)
  if (prefix === null) return refuse("invalid image input")
  const data = url.slice(prefix[0].length)
  return base64.test(data) ? Effect.succeed(data) : refuse("invalid message format")
}

const contentOf = (content: ChatMessage["content"]) => {
  if (content === undefined) return Effect.succeed({ text: "", images: [] as Array<string> })
  if (typeof content === "string") return Effect.succeed({ text: content, images: [] as Array<string> })
  const texts = content.flatMap((p) => (p.type === "text" ? [p.text] : []))
  return Effect.map(
    Effect.forEach(
      content.flatMap((p) => (p.type === "image_url" ? [p] : [])),
      imageOf
    ),
    (images) => ({ text: texts.join("\n"), images })
  )
}

const argumentsOf = (name: string, text: string) =>
  Effect.try({
    try: () => (text.trim() === "" ? {} : (JSON.parse(text) as unknown)),
    catch: () => new BadRequest({ reason: `invalid arguments for tool call '${name}': not JSON`, status: 400 })
  }).pipe(
    Effect.filterOrFail(
      (value): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value),
      () => new BadRequest({ reason: `invalid arguments for tool call '${name}': not a JSON object`, status: 400 })
    )
  )

const toolCallsOf = (calls: NonNullable<ChatMessage["tool_calls"]>) =>
  Effect.forEach(calls, (call, index) =>
    Effect.map(argumentsOf(call.function.name, call.function.arguments), (args): ToolCall => ({
      ...(call.id === undefined ? {} : { id: call.id }),
      function: { index, name: call.function.name, arguments: args }
    }))
  )

const messageOf = (m: ChatMessage, toolNames: ReadonlyMap<string, string>) =>
  Effect.gen(function* () {
    const { images, text } = yield* contentOf(m.content)
    const calls = m.tool_calls === undefined || m.tool_calls.length === 0 ? [] : yield* toolCallsOf(m.tool_calls)
    const toolName = m.role === "tool" ? (m.name ?? (m.tool_call_id && toolNames.get(m.tool_call_id))) : undefined
    const message: Message = {
      role: m.role === "developer" ? "system" : m.role,
      content: text,
      ...(images.length > 0 ? { images } : {}),
      ...(calls.length > 0 ? { tool_calls: calls } : {}),
      ...(m.reasoning === undefined ? {} : { thinking: m.reasoning }),
      ...(toolName ? { tool_name: toolName } : {}),
      ...(m.tool_call_id === undefined ? {} : { tool_call_id: m.tool_call_id })
    }
    return message
  })

/** Which tool each earlier call id named, so a tool result can say which tool answered. */
const toolNamesOf = (messages: ReadonlyArray<ChatMessage>) =>
  new Map(
    messages.flatMap((m) => (m.tool_calls ?? []).flatMap((c) => (c.id === undefined ? [] : [[c.id, c.function.name]])))
  ) as ReadonlyMap<string, string>

const efforts: Record<string, boolean | string> = {
  none: false,
  minimal: "low",
  low: "low",
  medium: "medium",
  high: "high",
  max: "max",
  xhigh: "max",
  ultra: "max"
}

const thinkOf = (effort: string | undefined) => {
  if (effort === undefined) return Effect.succeed(undefined)
  const think = efforts[effort]
  return think === undefined
    ? refuse(`invalid reasoning value: '${effort}' (must be one of ${Object.keys(efforts).join(", ")})`)
    : Effect.succeed(think)
}

const formatOf = (format: ResponseFormat | undefined) =>
  format?.type === "json_object" ? "json" : format?.type === "json_schema" ? format.json_schema.schema : undefined

/** `/v1/chat/completions` as an engine chat request. */
export const chat = (r: ChatCompletionRequest): Effect.Effect<ChatRequest, BadRequest> =>
  Effect.gen(function* () {
    if (r.messages.length === 0) return yield* refuse("[] is too short - 'messages'")
    const names = toolNamesOf(r.messages)
    const messages = yield* Effect.forEach(r.messages, (m) => messageOf(m, names))
    const think = yield* thinkOf(r.reasoning_effort ?? r.reasoning?.effort)
    const format = formatOf(r.response_format)
    return {
      model: r.model,
      messages,
      options: optionsOf(r, r.max_tokens ?? r.max_completion_tokens),
      ...(r.tools === undefined || r.tools.length === 0 ? {} : { tools: r.tools }),
      ...(format === undefined ? {} : { format }),
      ...(think === undefined ? {} : { think })
    }
  })

/** `/v1/completions` as an engine generate request. */
export const completion = (r: CompletionRequest): GenerateRequest => ({
  model: r.model,
  prompt: r.prompt,
  ...(r.suffix === undefined ? {} : { suffix: r.suffix }),
  options: optionsOf(r, r.max_tokens)
})

export type EncodingFormat = "float" | "base64"

/** `/v1/embeddings` as an engine embed request, and the encoding the answer wants. */
export const embedding = (
  r: EmbeddingRequest
): Effect.Effect<{ readonly req: EmbedRequest; readonly encoding: EncodingFormat }, BadRequest> => {
  const encoding = r.encoding_format ?? "float"
  if (encoding !== "float" && encoding !== "base64")
    return refuse(`Invalid value for 'encoding_format' = ${encoding}. Supported values: ['float', 'base64'].`)
  const input = r.input === "" ? [""] : r.input
  const valid =
    typeof input === "string" ||
    (Array.isArray(input) && input.length > 0 && input.every((s): s is string => typeof s === "string"))
  if (!valid) return refuse("invalid input")
  return Effect.succeed({
    req: {
      model: r.model,
      input: input as string | ReadonlyArray<string>,
      ...(r.dimensions === undefined ? {} : { dimensions: r.dimensions })
    },
    encoding
  })
}
