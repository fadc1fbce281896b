/**
 * How an answer's parsed JSON becomes a typed value: a plain function that returns the value or why it does not
 * fit, so the hot path (Direct.ts) decodes inside its one callback, with no Effect per answer.
 *
 * Choices:
 * - The answers of every call the engine makes per request (chat, generate, embed, embeddings) get one hand-written
 *   check of the fields Sluice reads (the Domain schema's required fields, the token counts and the vectors), and
 *   the object is passed through as parsed: unknown fields, and known ones Sluice never reads, are untouched.
 *   A Schema decode of a chat answer cost more than the rest of the exchange's parsing (bench/overhead).
 *   Optional fields older servers send as `null` are dropped, as the schemas' `optionalNullable` does.
 * - Every other answer (version, tags, show, ps) is decoded with its Domain schema, keeping unknown fields.
 */
import { Either, ParseResult, Schema } from "effect"
import type { ChatResponse } from "../Domain/Chat.js"
import type { EmbeddingsResponse, EmbedResponse } from "../Domain/Embed.js"
import type { GenerateResponse } from "../Domain/Generate.js"

/** The value, or a reason it does not decode (the reason is a string). */
export type Decode<A> = (json: unknown) => Either.Either<A, string>

const parseOptions = { onExcessProperty: "preserve" } as const

/** Decodes with a Domain schema, keeping unknown fields. */
export const fromSchema = <A, I>(schema: Schema.Schema<A, I>): Decode<A> => {
  const decode = Schema.decodeUnknownEither(schema, parseOptions)
  return (json) => Either.mapLeft(decode(json), (error) => ParseResult.TreeFormatter.formatErrorSync(error))
}

type Fields = Record<string, unknown>

const isObject = (value: unknown): value is Fields =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The first field of `fields` whose value is not of `type` (absent is fine when optional), or undefined. */
const wrongField = (
  object: Fields,
  type: "string" | "number" | "boolean",
  required: ReadonlyArray<string>,
  optional: ReadonlyArray<string>
): string | undefined => {
  for (const field of required) if (typeof object[field] !== type) return `${field} is not a ${type}`
  for (const field of optional) {
    const value = object[field]
    if (value !== undefined && typeof value !== type) return `${field} is not a ${type}`
  }
  return undefined
}

const dropNulls = (object: Fields, fields: ReadonlyArray<string>): void => {
  for (const field of fields) if (object[field] === null) delete object[field]
}

const metrics = [
  "total_duration",
  "load_duration",
  "prompt_eval_count",
  "prompt_eval_duration",
  "eval_count",
  "eval_duration"
]

const fail = (reason: string) => Either.left(`the body does not match the schema: ${reason}`)

const notAnObject = fail("not an object")

/** The fields of a chat or generate answer (or stream chunk) that every answer has. */
const answerFields = (json: Fields): string | undefined =>
  wrongField(json, "string", ["model", "created_at"], ["done_reason"]) ??
  wrongField(json, "boolean", ["done"], []) ??
  wrongField(json, "number", [], metrics)

/** A chat answer: model, created_at, done, the message's role and content, the token counts. */
export const chat: Decode<ChatResponse> = (json) => {
  if (!isObject(json)) return notAnObject
  const message = json.message
  if (!isObject(message)) return fail("message is not an object")
  const wrong =
    answerFields(json) ?? wrongField(message, "string", ["role", "content"], ["thinking", "tool_name", "tool_call_id"])
  if (wrong !== undefined) return fail(wrong)
  dropNulls(message, ["images", "tool_calls"])
  return Either.right(json as unknown as ChatResponse)
}

/** A generate answer: model, created_at, response, done, the token counts. */
export const generate: Decode<GenerateResponse> = (json) => {
  if (!isObject(json)) return notAnObject
  const wrong = answerFields(json) ?? wrongField(json, "string", ["response"], ["thinking"])
  if (wrong !== undefined) return fail(wrong)
  dropNulls(json, ["context", "tool_calls"])
  return Either.right(json as unknown as GenerateResponse)
}

const isVector = (value: unknown): boolean => {
  if (!Array.isArray(value)) return false
  for (const x of value) if (typeof x !== "number") return false
  return true
}

/** An embed answer: model, every vector all numbers, the token count. */
export const embed: Decode<EmbedResponse> = (json) => {
  if (!isObject(json)) return notAnObject
  const wrong = wrongField(json, "string", ["model"], []) ?? wrongField(json, "number", [], metrics.slice(0, 3))
  if (wrong !== undefined) return fail(wrong)
  const embeddings = json.embeddings
  if (!Array.isArray(embeddings)) return fail("embeddings is not an array")
  for (let i = 0; i < embeddings.length; i++) {
    if (!isVector(embeddings[i])) return fail(`embeddings[${i}] is not an array of numbers`)
  }
  return Either.right(json as unknown as EmbedResponse)
}

/** A legacy embeddings answer: one vector. */
export const embeddings: Decode<EmbeddingsResponse> = (json) => {
  if (!isObject(json)) return notAnObject
  if (!isVector(json.embedding)) return fail("embedding is not an array of numbers")
  return Either.right(json as unknown as EmbeddingsResponse)
}
