/**
 * Test fixture: what a refused request body must look like on each API family. Ollama's routes answer
 * `{"error": "<sentence>"}`; the `/v1` routes answer OpenAI's envelope. Neither ever carries Schema's own rendering
 * of a type (`{ readonly model: string; ... }`, `ReadonlyArray<...>`, `Expected X, actual Y`, the tree formatter's
 * branches), which is what a Schema error formatted as is would leak.
 */
import { assert } from "@effect/vitest"

/** Text that only a Schema formatter writes. */
export const schemaText =
  /readonly |ReadonlyArray|Struct \(|Encoded side|Type side|[└├]─|\{ |\| undefined|Expected [^,]*, actual|\] is missing/

export type Family = "ollama" | "openai"

export interface Refusal {
  readonly message: string
  readonly param: string | null
  readonly code: string | null
}

/** Parses `text` as the family's error body and checks its shape; returns its fields (an Ollama body has no param). */
export const refusalOf = (family: Family, status: number, text: string, what: string): Refusal => {
  const json = JSON.parse(text) as Record<string, unknown>
  assert.deepStrictEqual(Object.keys(json), ["error"], what)
  assert.notMatch(text, schemaText, what)
  if (family === "ollama") {
    assert.isString(json.error, what)
    assert.isNotEmpty(json.error as string, what)
    return { message: json.error as string, param: null, code: null }
  }
  const error = json.error as Record<string, unknown>
  assert.deepStrictEqual(Object.keys(error).sort(), ["code", "message", "param", "type"], what)
  assert.strictEqual(error.type, status === 404 ? "not_found_error" : "invalid_request_error", what)
  assert.isString(error.message, what)
  assert.isTrue(error.param === null || typeof error.param === "string", what)
  assert.isTrue(error.code === null || typeof error.code === "string", what)
  return { message: error.message as string, param: error.param as string | null, code: error.code as string | null }
}
