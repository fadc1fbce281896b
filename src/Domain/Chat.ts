/**
 * `/api/chat` wire types: messages, tools, tool calls (arguments are a JSON object, unlike OpenAI's string),
 * the request and the response (one shape for stream chunks and the non-stream object).
 */
import { Schema } from "effect"
import {
  DoneReason,
  Format,
  JsonObject,
  KeepAlive,
  Logprobs,
  Metrics,
  optional,
  optionalNullable,
  Options,
  Think
} from "./Common.js"

export const ToolCall = Schema.Struct({
  id: optional(Schema.String),
  type: optional(Schema.String),
  function: Schema.Struct({
    index: optional(Schema.Number),
    name: Schema.String,
    arguments: JsonObject
  })
})
export type ToolCall = typeof ToolCall.Type

/** The JSON Schema of a tool's parameters; only the parts Sluice reads are typed, the rest is kept. */
export const ToolParameters = Schema.Struct(
  {
    type: optional(Schema.String),
    properties: optional(JsonObject),
    required: optional(Schema.Array(Schema.String))
  },
  JsonObject
)

export const Tool = Schema.Struct({
  type: Schema.String,
  function: Schema.Struct({
    name: Schema.String,
    description: optional(Schema.String),
    parameters: optional(ToolParameters)
  })
})
export type Tool = typeof Tool.Type

export const Role = Schema.String
export const Message = Schema.Struct({
  role: Role,
  content: Schema.String,
  thinking: optional(Schema.String),
  images: optionalNullable(Schema.Array(Schema.String)),
  tool_calls: optionalNullable(Schema.Array(ToolCall)),
  tool_name: optional(Schema.String),
  tool_call_id: optional(Schema.String)
})
export type Message = typeof Message.Type

export const ChatRequest = Schema.Struct({
  model: Schema.String,
  messages: optional(Schema.Array(Message)),
  tools: optional(Schema.Array(Tool)),
  format: optionalNullable(Format),
  options: optional(Options),
  stream: optional(Schema.Boolean),
  keep_alive: optional(KeepAlive),
  think: optional(Think),
  truncate: optional(Schema.Boolean),
  shift: optional(Schema.Boolean),
  logprobs: optional(Schema.Boolean),
  top_logprobs: optional(Schema.Number)
})
export type ChatRequest = typeof ChatRequest.Type

export const ChatResponse = Schema.Struct({
  model: Schema.String,
  created_at: Schema.String,
  message: Message,
  done: Schema.Boolean,
  done_reason: optional(DoneReason),
  logprobs: optional(Logprobs),
  ...Metrics
})
export type ChatResponse = typeof ChatResponse.Type
