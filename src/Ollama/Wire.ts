/**
 * What an answer was on the wire: its JSON text (and byte length, when counted), noted by the exchange for the value
 * it decoded from it. The gateway forwards that text instead of writing the value as JSON again (Http/Respond.ts),
 * and the response cache sizes an entry by the bytes (an embedding's answer is kilobytes of numbers: writing it again
 * cost ~75-100 µs, more than the rest of storing or sending it).
 *
 * Choices:
 * - Kept beside the value in a WeakMap, not on it: no field a caller could see or spread, and the note goes with the
 *   value. Values are never mutated after decoding (the engine builds new objects when it changes an answer), so a
 *   noted text always says what the value holds, plus whatever the schema check left out (Ollama's `null`s).
 * - The text is a string the exchange had anyway; keeping it holds it as long as the value (the cache counts it).
 */
interface Received {
  readonly text: string
  readonly bytes: number | undefined
}

const received = new WeakMap<object, Received>()

/** Notes that `value` was decoded from `text` (`bytes` long in UTF-8, when known). */
export const note = (value: unknown, text: string, bytes?: number): void => {
  if (typeof value === "object" && value !== null) received.set(value, { text, bytes })
}

/** The JSON text `value` was decoded from, if noted. */
export const textOf = (value: unknown): string | undefined =>
  typeof value === "object" && value !== null ? received.get(value)?.text : undefined

/** The byte length of the JSON text `value` was decoded from, if noted and counted. */
export const bytesOf = (value: unknown): number | undefined =>
  typeof value === "object" && value !== null ? received.get(value)?.bytes : undefined
