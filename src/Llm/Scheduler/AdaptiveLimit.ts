/**
 * An adaptive concurrency limit for one backend: how many calls Sluice should run on it at once, learned from
 * the latency and outcome of the calls that finished, in the spirit of TCP Vegas, Netflix's concurrency-limits
 * (Vegas/Gradient) and Envoy's adaptive concurrency filter.
 *
 * The signal: latency per unit of work, over a window of samples, relative to a baseline.
 * - A sample is the latency of one call (ms from holding the slot to the end), divided by its `work` when the
 *   caller knows it (e.g. output tokens; 1 otherwise). An LLM call lasts as long as its answer, so raw latency
 *   mostly measures output length; latency per token measures the backend's speed, which is what queueing slows.
 * - The short-term value is the median of a window of `window` samples: one long answer among short ones moves a
 *   median little, where it would move a mean or an EWMA a lot.
 * - The baseline (the latency with no queueing) is the lowest window median seen. Because a minimum only goes
 *   down, it is re-measured every `probeEvery` windows, Envoy-style: for one window the effective limit drops to
 *   half, only samples of calls that started with at most that many in flight count, and their median replaces
 *   the baseline (so it follows a backend that became slower or faster, e.g. another model now shares the GPU).
 *   The first probe follows the first window, and a probe that finds the baseline far lower than believed (the
 *   backend was already queueing: the limit started too high) halves the limit and probes again, deeper.
 * - A deeper probe only tells whether the level above it queued, so it takes half a window: it runs at the lowest
 *   level, where each sample costs the most throughput (a backend of 2 slots, probed at 1 from the default start
 *   of 4, runs at half speed meanwhile: a fixed cost the first embedMany of bench/embeddings paid). When it finds
 *   that level was not queueing, the two medians give the backend's slots, S ~ round(level above x its median /
 *   this median) (latency grows as inFlight / S past S), and the limit goes straight to tolerance x S, where it
 *   would settle, instead of climbing back one window at a time; never above the limit found queueing.
 *
 * The decision, once per full window (AIMD, as TCP):
 * - median > tolerance x baseline: the backend queues; shrink the limit multiplicatively (x `backoff`).
 * - otherwise, if the limit was used (the most in flight during the window >= `utilization` x limit): grow by 1.
 *   An idle limit does not grow: nothing proves the backend could take more.
 * - An overload outcome (503 busy, timeout) halves the limit at once, at most once per "round trip": the next
 *   overloads within as many samples as the old limit (the calls already in flight) are not counted again.
 * - "ignore" samples (client errors, interruptions) say nothing about the backend and change nothing.
 * The limit is kept as a real number (so x0.9 steps add up) and used as `floor`, clamped to [min, max].
 * With a backend of S slots whose latency grows as inFlight / S beyond S, the limit settles where
 * inFlight / S ~ tolerance, i.e. around 1.5 S by default: the backend stays busy and queues briefly.
 *
 * The state machine is pure (`initial`, `update`, `limitOf`), so it is tested by feeding samples; `make` wraps it
 * in a Ref for standalone use. `Slots` keeps the state in its own gate instead, to change it atomically with the
 * permits.
 */
import { Effect, Ref } from "effect"

/** What a finished call says about the backend. */
export type Outcome = "ok" | "overload" | "ignore"

export interface Sample {
  readonly latencyMs: number
  readonly outcome: Outcome
  /** Calls in flight on the backend when this call started, itself included. */
  readonly inFlight: number
  /** The call's size (e.g. output tokens); latency is divided by it. Default 1. */
  readonly work?: number | undefined
}

export interface Options {
  /** The limit to start with; default 4. */
  readonly initial?: number | undefined
  /** Default 1. */
  readonly min?: number | undefined
  /** Default 256. */
  readonly max?: number | undefined
  /** How much slower than the baseline the window median may be before the limit shrinks; default 1.5. */
  readonly tolerance?: number | undefined
  /** Samples per decision; default 10. */
  readonly window?: number | undefined
  /** Factor applied when latency rises beyond the tolerance; default 0.9. */
  readonly backoff?: number | undefined
  /** The fraction of the limit that must have been in flight for the limit to grow; default 0.8. */
  readonly utilization?: number | undefined
  /** Windows between two re-measurements of the baseline; 0 never re-measures; default 50. */
  readonly probeEvery?: number | undefined
}

export type Resolved = { readonly [K in keyof Options]-?: number }

/** The defaults, in one place. */
export const defaults: Resolved = {
  initial: 4,
  min: 1,
  max: 256,
  tolerance: 1.5,
  window: 10,
  backoff: 0.9,
  utilization: 0.8,
  probeEvery: 50
}

export const resolve = (options: Options = {}): Resolved => {
  const pick = (key: keyof Options) => options[key] ?? defaults[key]
  const min = Math.max(1, Math.floor(pick("min")))
  const max = Math.max(min, Math.floor(pick("max")))
  const entries = Object.keys(defaults).map((key) => [key, pick(key as keyof Options)])
  return { ...(Object.fromEntries(entries) as Resolved), min, max, window: Math.max(1, Math.floor(pick("window"))) }
}

export interface State {
  /** The limit as a real number; the effective limit is `limitOf`. */
  readonly limit: number
  /** The no-queueing latency per unit of work, ms; undefined until the first window. */
  readonly baseline: number | undefined
  /** Latencies per unit of work of the current window. */
  readonly samples: ReadonlyArray<number>
  /** The most calls in flight among the window's samples. */
  readonly peak: number
  /** Samples to go before another overload may cut the limit. */
  readonly cooldown: number
  /** Windows decided since the last baseline probe. */
  readonly windows: number
  /** This window re-measures the baseline. */
  readonly probing: boolean
  /** During a deeper probe: the level (calls in flight) of the probe before it, whose median is `baseline`. */
  readonly above: number | undefined
}

const clamp = (options: Resolved, limit: number) => Math.min(options.max, Math.max(options.min, limit))

export const initial = (options: Resolved): State => ({
  limit: clamp(options, options.initial),
  baseline: undefined,
  samples: [],
  peak: 0,
  cooldown: 0,
  windows: options.probeEvery > 0 ? options.probeEvery - 1 : 0,
  probing: false,
  above: undefined
})

/** The number of calls allowed in flight now. */
export const limitOf = (options: Resolved, state: State): number => {
  const limit = Math.floor(state.limit)
  return state.probing ? Math.max(options.min, Math.floor(limit / 2)) : limit
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const overload = (options: Resolved, state: State): State =>
  state.cooldown > 0
    ? { ...state, cooldown: state.cooldown - 1 }
    : {
        ...state,
        limit: clamp(options, state.limit / 2),
        samples: [],
        peak: 0,
        cooldown: Math.ceil(state.limit),
        probing: false,
        above: undefined
      }

/**
 * A deeper probe found its level not queueing, while the level above it (median `baseline`) was: the backend has
 * about S = above x baseline-ratio slots; the limit goes to tolerance x S, between the current limit and the one
 * found queueing (twice it).
 */
const knee = (options: Resolved, state: State, above: number, value: number): number => {
  const slots = Math.max(1, Math.round((above * value) / state.baseline!))
  return clamp(options, Math.min(2 * state.limit, Math.max(state.limit, options.tolerance * slots)))
}

/**
 * A probe window ended: its median is the new baseline. If it is far below the old one, the old baseline was
 * measured while the backend queued (the limit started too high): halve the limit and probe again. A deeper
 * probe that finds no such gap places the limit at the knee it measured (`knee`).
 */
const probed = (options: Resolved, state: State, value: number): State => {
  const hidden = state.baseline !== undefined && value * options.tolerance < state.baseline
  const level = limitOf(options, state)
  const deeper = hidden && level > options.min
  const limit = deeper
    ? clamp(options, state.limit / 2)
    : !hidden && state.above !== undefined
      ? knee(options, state, state.above, value)
      : state.limit
  return { ...state, baseline: value, limit, probing: deeper, windows: 0, above: deeper ? level : undefined }
}

const decide = (options: Resolved, state: State): State => {
  const value = median(state.samples)
  const next = { ...state, samples: [], peak: 0 }
  if (state.probing) return probed(options, next, value)
  const baseline = Math.min(state.baseline ?? value, value)
  const windows = state.windows + 1
  const probing = options.probeEvery > 0 && windows >= options.probeEvery
  const used = state.peak >= options.utilization * Math.floor(state.limit)
  const limit =
    value > options.tolerance * baseline ? state.limit * options.backoff : used ? state.limit + 1 : state.limit
  return { ...next, baseline, windows, probing, limit: clamp(options, limit) }
}

/** The state after one more sample. */
export const update = (options: Resolved, state: State, sample: Sample): State => {
  if (sample.outcome === "ignore") return state
  if (sample.outcome === "overload") return overload(options, state)
  const cooldown = Math.max(0, state.cooldown - 1)
  if (state.probing && sample.inFlight > limitOf(options, state)) return { ...state, cooldown }
  const perWork = sample.latencyMs / Math.max(1, sample.work ?? 1)
  const next = {
    ...state,
    cooldown,
    samples: [...state.samples, perWork],
    peak: Math.max(state.peak, sample.inFlight)
  }
  const window = state.probing && state.above !== undefined ? Math.ceil(options.window / 2) : options.window
  return next.samples.length >= window ? decide(options, next) : next
}

/** A standalone adaptive limit (for a caller that does its own admission). */
export interface AdaptiveLimit {
  /** The number of calls allowed in flight now. */
  readonly limit: Effect.Effect<number>
  /** Reports a finished call; returns the limit after it. */
  readonly sample: (sample: Sample) => Effect.Effect<number>
  readonly state: Effect.Effect<State>
}

export const make = (options?: Options): Effect.Effect<AdaptiveLimit> =>
  Effect.map(
    Effect.sync(() => resolve(options)),
    (resolved) => {
      const state = Ref.unsafeMake(initial(resolved))
      return {
        limit: Effect.map(Ref.get(state), (s) => limitOf(resolved, s)),
        sample: (sample) =>
          Ref.modify(state, (s) => {
            const next = update(resolved, s, sample)
            return [limitOf(resolved, next), next]
          }),
        state: Ref.get(state)
      }
    }
  )
