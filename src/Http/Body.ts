/**
 * Reads and validates a JSON request body with a wire Schema before anything reaches the engine.
 * The bytes go through the Guard first (size cap, UTF-8, nesting depth), then the Schema.
 * Unknown fields are preserved (not stripped), so options a newer client sends still reach Ollama.
 * Every refusal is a typed `BadRequest` (400, or 413 for an oversized body) that the routes answer in
 * their family's error shape.
 */
import { Effect, ParseResult, Schema } from "effect"
import { BadRequest, readJson } from "./Guard.js"

export { BadRequest } from "./Guard.js"

/** Validates an already parsed JSON value with `schema`. */
export const decodeValue = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknown(schema, { onExcessProperty: "preserve", errors: "first" })
  return (value: unknown): Effect.Effect<A, BadRequest> =>
    decode(value).pipe(
      Effect.mapError((e) => new BadRequest({ reason: ParseResult.TreeFormatter.formatErrorSync(e), status: 400 })),
      Effect.tapError((e) => Effect.logDebug(`request refused (400): ${e.reason}`))
    )
}

/** Decodes the body of the current request with `schema`. */
export const decodeBody = <A, I>(schema: Schema.Schema<A, I>) => Effect.flatMap(readJson, decodeValue(schema))
