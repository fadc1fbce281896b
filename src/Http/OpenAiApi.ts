/**
 * OpenAI's request bodies as Ollama's `/v1` endpoints accept them (docs: the reference, §7). Strict on the fields
 * Sluice reads (a wrong type is a 400 before anything reaches the engine); fields it does not read (`logprobs`,
 * `user`, `n`, ...) are tolerated, as Ollama tolerates them. `null` is accepted wherever OpenAI's clients send it.
 */
import { Schema } from "effect"
import { Tool } from "../Domain/Chat.js"
import { JsonObject, optional, optionalNullable } from "../Domain/Common.js"

export const TextPart = Schema.Struct({ type: Schema.Literal("text"), text: Schema.String })

export const ImagePart = Schema.Struct({
  type: Schema.Literal("image_url"),
  image_url: Schema.Union(Schema.String, Schema.Struct({ url: Schema.String, detail: optional(Schema.String) }))
})

export const ContentPart = Schema.Union(TextPart, ImagePart)
export type ContentPart = typeof ContentPart.Type

export const ToolCallIn = Schema.Struct({
  id: optional(Schema.String),
  type: optional(Schema.String),
  function: Schema.Struct({ name: Schema.String, arguments: Schema.String })
})

export const ChatMessage = Schema.Struct({
  role: Schema.Literal("system", "developer", "user", "assistant", "tool"),
  content: optionalNullable(Schema.Union(Schema.String, Schema.Array(ContentPart))),
  name: optionalNullable(Schema.String),
  reasoning: optionalNullable(Schema.String),
  tool_calls: optionalNullable(Schema.Array(ToolCallIn)),
  tool_call_id: optionalNullable(Schema.String)
})
export type ChatMessage = typeof ChatMessage.Type

export const StreamOptions = Schema.Struct({ include_usage: optionalNullable(Schema.Boolean) })

export const ResponseFormat = Schema.Union(
  Schema.Struct({ type: Schema.Literal("text") }),
  Schema.Struct({ type: Schema.Literal("json_object") }),
  Schema.Struct({
    type: Schema.Literal("json_schema"),
    json_schema: Schema.Struct({ name: optional(Schema.String), schema: optionalNullable(JsonObject) })
  })
)
export type ResponseFormat = typeof ResponseFormat.Type

/** The sampling fields chat and completions share. */
const sampling = {
  model: Schema.String,
  stream: optionalNullable(Schema.Boolean),
  stream_options: optionalNullable(StreamOptions),
  max_tokens: optionalNullable(Schema.Int),
  temperature: optionalNullable(Schema.Number),
  top_p: optionalNullable(Schema.Number),
  seed: optionalNullable(Schema.Int),
  stop: optionalNullable(Schema.Union(Schema.String, Schema.Array(Schema.String))),
  frequency_penalty: optionalNullable(Schema.Number),
  presence_penalty: optionalNullable(Schema.Number)
}
export type Sampling = Schema.Struct.Type<typeof sampling>

export const ChatCompletionRequest = Schema.Struct({
  ...sampling,
  messages: Schema.Array(ChatMessage),
  max_completion_tokens: optionalNullable(Schema.Int),
  response_format: optionalNullable(ResponseFormat),
  tools: optionalNullable(Schema.Array(Tool)),
  reasoning_effort: optionalNullable(Schema.String),
  reasoning: optionalNullable(Schema.Struct({ effort: optionalNullable(Schema.String) }))
})
export type ChatCompletionRequest = typeof ChatCompletionRequest.Type

export const CompletionRequest = Schema.Struct({
  ...sampling,
  prompt: Schema.String,
  suffix: optionalNullable(Schema.String)
})
export type CompletionRequest = typeof CompletionRequest.Type

/** `input` is checked by hand: Ollama answers any shape but a string or a non-empty string array `invalid input`. */
export const EmbeddingRequest = Schema.Struct({
  model: Schema.String,
  input: optionalNullable(Schema.Unknown),
  dimensions: optionalNullable(Schema.Int),
  encoding_format: optionalNullable(Schema.String)
})
export type EmbeddingRequest = typeof EmbeddingRequest.Type
