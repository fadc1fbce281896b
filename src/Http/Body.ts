/**
 * Reads and validates a JSON request body with a wire Schema before anything reaches the engine.
 * The bytes go through the Guard first (size cap, UTF-8, nesting depth), then the Schema.
 * Unknown fields are preserved (not stripped), so options a newer client sends still reach Ollama.
 * Every refusal is a typed `BadRequest` (400, or 413 for an oversized body) that the routes answer in
 * their family's error shape; a Schema refusal is worded by `refuse` (BodyErrors.ts: Ollama's words unless the
 * route says otherwise), never with Schema's rendering of the type.
 */
import { Effect, Either, Schema } from "effect"
import * as BodyErrors from "./BodyErrors.js"
import { type BadRequest, readJson } from "./Guard.js"

export { BadRequest } from "./Guard.js"

/** Validates an already parsed JSON value with `schema`; a refusal is worded by `refuse`. */
export const decodeValue = <A, I>(schema: Schema.Schema<A, I>, refuse: BodyErrors.Refuse = BodyErrors.ollama()) => {
  // synchronous: the wire schemas have no asynchronous parts, and an Either costs less per request than an Effect
  const decode = Schema.decodeUnknownEither(schema, { onExcessProperty: "preserve", errors: "first" })
  return (value: unknown): Effect.Effect<A, BadRequest> => {
    const decoded = decode(value)
    if (Either.isRight(decoded)) return Effect.succeed(decoded.right)
    const refused = refuse(decoded.left)
    return Effect.zipRight(Effect.logDebug(`request refused (400): ${refused.reason}`), Effect.fail(refused))
  }
}

/** Decodes the body of the current request with `schema`; a refusal is worded by `refuse`. */
export const decodeBody = <A, I>(schema: Schema.Schema<A, I>, refuse: BodyErrors.Refuse = BodyErrors.ollama()) =>
  Effect.flatMap(readJson, decodeValue(schema, refuse))
