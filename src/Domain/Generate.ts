/** `/api/generate` wire types: the request and the response (one shape for stream chunks and the whole). */
import { Schema } from "effect"
import {
  DoneReason,
  Format,
  KeepAlive,
  Logprobs,
  Metrics,
  optional,
  optionalNullable,
  Options,
  Think
} from "./Common.js"
import { ToolCall } from "./Chat.js"

export const GenerateRequest = Schema.Struct({
  model: Schema.String,
  prompt: optional(Schema.String),
  suffix: optional(Schema.String),
  system: optional(Schema.String),
  template: optional(Schema.String),
  context: optional(Schema.Array(Schema.Number)),
  stream: optional(Schema.Boolean),
  raw: optional(Schema.Boolean),
  format: optionalNullable(Format),
  images: optional(Schema.Array(Schema.String)),
  keep_alive: optional(KeepAlive),
  options: optional(Options),
  think: optional(Think),
  truncate: optional(Schema.Boolean),
  shift: optional(Schema.Boolean),
  logprobs: optional(Schema.Boolean),
  top_logprobs: optional(Schema.Number)
})
export type GenerateRequest = typeof GenerateRequest.Type

export const GenerateResponse = Schema.Struct({
  model: Schema.String,
  created_at: Schema.String,
  response: Schema.String,
  thinking: optional(Schema.String),
  done: Schema.Boolean,
  done_reason: optional(DoneReason),
  context: optionalNullable(Schema.Array(Schema.Number)),
  tool_calls: optionalNullable(Schema.Array(ToolCall)),
  logprobs: optional(Logprobs),
  ...Metrics
})
export type GenerateResponse = typeof GenerateResponse.Type
