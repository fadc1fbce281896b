/** `/api/embed` (string or array input, L2-normalised vectors) and the legacy `/api/embeddings`. */
import { Schema } from "effect"
import { KeepAlive, optional, Options } from "./Common.js"

export const EmbedRequest = Schema.Struct({
  model: Schema.String,
  input: optional(Schema.Union(Schema.String, Schema.Array(Schema.String))),
  truncate: optional(Schema.Boolean),
  dimensions: optional(Schema.Number),
  keep_alive: optional(KeepAlive),
  options: optional(Options)
})
export type EmbedRequest = typeof EmbedRequest.Type

export const EmbedResponse = Schema.Struct({
  model: Schema.String,
  embeddings: Schema.Array(Schema.Array(Schema.Number)),
  total_duration: optional(Schema.Number),
  load_duration: optional(Schema.Number),
  prompt_eval_count: optional(Schema.Number)
})
export type EmbedResponse = typeof EmbedResponse.Type

export const EmbeddingsRequest = Schema.Struct({
  model: Schema.String,
  prompt: optional(Schema.String),
  keep_alive: optional(KeepAlive),
  options: optional(Options)
})
export type EmbeddingsRequest = typeof EmbeddingsRequest.Type

/** Legacy embeddings are not normalised. */
export const EmbeddingsResponse = Schema.Struct({
  embedding: Schema.Array(Schema.Number)
})
export type EmbeddingsResponse = typeof EmbeddingsResponse.Type
