/**
 * Fault injection for the simulator's inference routes (chat, generate, embed, embeddings).
 *
 * Each request draws one number from a seeded PRNG and gets at most one fault, chosen by walking the rates
 * in this order: error500, error503, reset, stall, malformed, midStreamError, spike (so rates add up; a sum
 * above 1 starves the later kinds). The same seed and the same request order give the same faults.
 *
 * - error500: 500 `{"error":"simulated internal error"}` before any byte.
 * - error503: 503 with Ollama's exact server-busy body.
 * - reset: the socket is destroyed with no response at all.
 * - stall: the request hangs `stallMs` first (ends at once if the client goes away).
 * - malformed: a broken NDJSON line mid-stream (a truncated JSON body when not streaming).
 * - midStreamError: `{"error":"simulated mid-stream error"}` mid-stream and the stream ends without `done`
 *   (a 500 with that body when not streaming).
 * - spike: `spikeMs` extra latency before the request is scheduled.
 */
import { mulberry32 } from "./Text.js"

export interface Faults {
  readonly error500: number
  readonly error503: number
  readonly reset: number
  readonly stall: number
  readonly malformed: number
  readonly midStreamError: number
  readonly spike: number
  /** How long a stalled request hangs; long enough for client timeouts to fire. */
  readonly stallMs: number
  /** Latency added by a spike. */
  readonly spikeMs: number
  /** Seed of the per-request fault draw. */
  readonly seed: number
}

export type FaultKind = "error500" | "error503" | "reset" | "stall" | "malformed" | "midStreamError" | "spike"

export const faultKinds: ReadonlyArray<FaultKind> = [
  "error500",
  "error503",
  "reset",
  "stall",
  "malformed",
  "midStreamError",
  "spike"
]

export const defaultFaults: Faults = {
  error500: 0,
  error503: 0,
  reset: 0,
  stall: 0,
  malformed: 0,
  midStreamError: 0,
  spike: 0,
  stallMs: 120_000,
  spikeMs: 1_000,
  seed: 1
}

export const internalErrorMessage = "simulated internal error"
export const midStreamErrorMessage = "simulated mid-stream error"

/** Checks a partial fault update from the control API; returns an error message or the clean partial. */
export const validateFaults = (input: unknown): string | Partial<Faults> => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return "faults must be a JSON object"
  const out: Record<string, number> = {}
  for (const [key, value] of Object.entries(input)) {
    if (!(key in defaultFaults)) return `unknown fault "${key}"`
    if (typeof value !== "number" || !Number.isFinite(value)) return `fault "${key}" must be a number`
    const isRate = (faultKinds as ReadonlyArray<string>).includes(key)
    if (isRate && (value < 0 || value > 1)) return `fault "${key}" must be between 0 and 1`
    if (!isRate && value < 0) return `fault "${key}" must not be negative`
    out[key] = value
  }
  return out as Partial<Faults>
}

/** Holds the current fault config and draws a fault per request. Mutated only through `set`. */
export class FaultInjector {
  private current: Faults
  private random: () => number

  constructor(initial: Faults) {
    this.current = initial
    this.random = mulberry32(initial.seed)
  }

  get faults(): Faults {
    return this.current
  }

  /** Merges a partial update; a new `seed` restarts the draw sequence. */
  set(partial: Partial<Faults>): void {
    this.current = { ...this.current, ...partial }
    if (partial.seed !== undefined) this.random = mulberry32(partial.seed)
  }

  /** The fault for the next request, if any. Draws nothing when every rate is zero. */
  decide(): FaultKind | undefined {
    const f = this.current
    if (f.error500 + f.error503 + f.reset + f.stall + f.malformed + f.midStreamError + f.spike <= 0) return undefined
    const u = this.random()
    let acc = 0
    for (const kind of faultKinds) {
      acc += f[kind]
      if (u < acc) return kind
    }
    return undefined
  }
}
