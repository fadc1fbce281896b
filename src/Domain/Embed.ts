/** `/api/embed` (string or array input, L2-normalised vectors) and the legacy `/api/embeddings`. */
import { Schema } from "effect"
import { KeepAlive, optional, Options } from "./Common.js"

/**
 * One embedding vector. Checked with one predicate instead of `Schema.Array(Schema.Number)`, whose per-element
 * parse costs ~1.5 ms for a 64 × 384 answer against ~0.04 ms here (measured on the dev machine); the vectors are
 * by far the largest thing Sluice decodes.
 */
export const Vector = Schema.declare(
  (u: unknown): u is ReadonlyArray<number> => Array.isArray(u) && u.every((n) => typeof n === "number"),
  { identifier: "Vector", description: "an array of numbers" }
)

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
  embeddings: Schema.Array(Vector),
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
  embedding: Vector
})
export type EmbeddingsResponse = typeof EmbeddingsResponse.Type
