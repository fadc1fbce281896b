/**
 * The byte length an answer had on the wire, noted by the direct exchange (Direct.ts) for the object it decoded, so
 * the response cache sizes an entry without writing the answer as JSON again (an embedding's answer is kilobytes of
 * numbers: writing it again cost more than the rest of storing it). Kept beside the object, not on it: a WeakMap
 * adds no field a caller could see or spread, and forgets the size with the object.
 */
const sizes = new WeakMap<object, number>()

/** Notes that `value` came as `bytes` bytes of JSON. */
export const note = (value: unknown, bytes: number): void => {
  if (typeof value === "object" && value !== null) sizes.set(value, bytes)
}

/** The byte length noted for `value`, if any. */
export const of = (value: unknown): number | undefined =>
  typeof value === "object" && value !== null ? sizes.get(value) : undefined
