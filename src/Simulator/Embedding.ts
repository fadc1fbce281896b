/**
 * Deterministic embeddings: a hashed bag of words. Each lower-cased word maps to a seeded random vector
 * (uniform in [-1, 1) per component); a text's vector is the sum over its words, L2-normalised, so texts
 * that share words have a higher cosine similarity (enough for vector-memory tests). A text without words
 * uses the vector of the whole string. `/api/embeddings` (legacy) returns the raw sum, which is not normalised.
 *
 * Word vectors are cached (cleared when the cache passes 20,000 entries), so repeated words cost one lookup.
 *
 * `/api/embed` components are rounded to 9 decimal places: Ollama's vectors are float32, written in their shortest
 * form (~9 significant digits, ~11 characters), where a float64 sum prints 17-19 digits. The rounding keeps the
 * simulator's answers the size of Ollama's, so clients parse what they would parse from Ollama (and the simulator
 * does not spend twice the CPU a real server would on writing them).
 */
import { fnv1a, mulberry32, words } from "./Text.js"

const cache = new Map<string, Float64Array>()
const cacheLimit = 20_000

const wordVector = (token: string, dim: number): Float64Array => {
  const key = `${dim}:${token}`
  const hit = cache.get(key)
  if (hit !== undefined) return hit
  if (cache.size >= cacheLimit) cache.clear()
  const random = mulberry32(fnv1a(token))
  const v = new Float64Array(dim)
  for (let i = 0; i < dim; i++) v[i] = random() * 2 - 1
  cache.set(key, v)
  return v
}

/** The raw (not normalised) bag-of-words vector of a text. */
export const rawEmbedding = (text: string, dim: number): Array<number> => {
  const sum = new Float64Array(dim)
  const tokens = words(text)
  for (const token of tokens.length === 0 ? [text] : tokens) {
    const v = wordVector(token, dim)
    for (let i = 0; i < dim; i++) sum[i]! += v[i]!
  }
  return Array.from(sum)
}

/** Scales a vector to unit L2 norm (a zero vector stays zero). */
export const normalize = (v: ReadonlyArray<number>): Array<number> => {
  let sq = 0
  for (const x of v) sq += x * x
  const norm = Math.sqrt(sq)
  return norm === 0 ? v.slice() : v.map((x) => x / norm)
}

/** A component as Ollama's float32 JSON carries it (9 decimals). */
const wire = (x: number): number => Math.round(x * 1e9) / 1e9

/**
 * The `/api/embed` vector: normalised, cut to `dimensions` and normalised again when 0 < dimensions < dim, with
 * the precision of Ollama's float32 answers.
 */
export const embedding = (text: string, dim: number, dimensions?: number): Array<number> => {
  const v = rawEmbedding(text, dim)
  return normalize(dimensions !== undefined && dimensions > 0 && dimensions < dim ? v.slice(0, dimensions) : v).map(
    wire
  )
}

/** Tokens an embedding input costs: its words plus BOS/EOS. */
export const embedTokens = (text: string): number => words(text).length + 2
