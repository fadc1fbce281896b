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

export interface DecodeOptions {
  /**
   * The schema changes nothing it decodes but `null` in a nullable optional field (no transformations, no
   * defaults: the wire Schemas of the inference routes). A value that already is of its type is then taken as it
   * is after one type check (`Schema.is`: ~1.5 µs for a chat body, against ~10 µs for the decode that copies it);
   * any other goes through the decode, which answers or words the refusal as before.
   */
  readonly plain?: boolean
}

/** Validates an already parsed JSON value with `schema`; a refusal is worded by `refuse`. */
export const decodeValue = <A, I>(
  schema: Schema.Schema<A, I>,
  refuse: BodyErrors.Refuse = BodyErrors.ollama(),
  options: DecodeOptions = {}
) => {
  // synchronous: the wire schemas have no asynchronous parts, and an Either costs less per request than an Effect
  const decode = Schema.decodeUnknownEither(schema, { onExcessProperty: "preserve", errors: "first" })
  const is = options.plain === true ? Schema.is(schema) : undefined
  return (value: unknown): Effect.Effect<A, BadRequest> => {
    if (is?.(value) === true) return Effect.succeed(value as A)
    const decoded = decode(value)
    if (Either.isRight(decoded)) return Effect.succeed(decoded.right)
    const refused = refuse(decoded.left)
    return Effect.zipRight(Effect.logDebug(`request refused (400): ${refused.reason}`), Effect.fail(refused))
  }
}

/** Decodes the body of the current request with `schema`; a refusal is worded by `refuse`. */
export const decodeBody = <A, I>(
  schema: Schema.Schema<A, I>,
  refuse: BodyErrors.Refuse = BodyErrors.ollama(),
  options: DecodeOptions = {}
) => Effect.flatMap(readJson, decodeValue(schema, refuse, options))
