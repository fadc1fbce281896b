/**
 * What the engine's options and a call's own options decide for one call: its class and wait in the queue, its
 * place in the admission line, the settings its pipeline runs with (retry, hedging, timeouts) and its fallback
 * strategies.
 *
 * Choices:
 * - A call's own `timeout` and `fallbacks` override the engine's; the engine's timeouts override
 *   `Timeouts.defaults` field by field.
 * - Fallbacks are looked up by normalised model name (`Llama3.2` finds those of `llama3.2:latest`); a model
 *   without its own entry gets `defaultFallbacks` (default: serve a stale cache entry).
 * - A `default` reply strategy is dropped for calls whose kind has no default reply (embeddings).
 */
import type { Duration } from "effect"
import { normalizeName } from "../Domain/ModelName.js"
import type * as Admission from "./Admission.js"
import type * as Budget from "./Budget.js"
import * as Fallback from "./Fallback.js"
import type * as Hedge from "./Hedge.js"
import type * as Pipeline from "./Pipeline.js"
import type { CachePolicy } from "./ResponseCache.js"
import type * as Retry from "./Retry.js"
import type * as Slots from "./Scheduler/Slots.js"
import * as Timeouts from "./Timeouts.js"

/** Scheduling classes, most urgent first. */
export type Priority = Slots.Priority

/** Per-call choices. */
export interface CallOptions {
  /** The call's class in the scheduler's queue (default "normal"). */
  readonly priority?: Priority
  /** When the queue is full: wait for room (default, backpressure) or fail at once with QueueFull. */
  readonly wait?: boolean
  /** "use" (default), "refresh" (recompute and store) or "bypass" (neither read nor write). */
  readonly cache?: CachePolicy
  /** The whole call's deadline (retries included); overrides the configured one. */
  readonly timeout?: Duration.DurationInput
  /** Fallback strategies for this call; override the model's configured ones. */
  readonly fallbacks?: ReadonlyArray<Fallback.Strategy>
  /** A budget for this call alone (unary calls), nested in any budget already in scope. */
  readonly budget?: Budget.Limits
}

/** The engine's options a call's policy is made from. */
export interface Options {
  readonly retry?: Retry.Options
  readonly timeouts?: Timeouts.Options
  /** Fallback strategies by model name. */
  readonly fallbacks?: Readonly<Record<string, ReadonlyArray<Fallback.Strategy>>>
  /** Fallbacks for models without their own entry; default: serve a stale cache entry. */
  readonly defaultFallbacks?: ReadonlyArray<Fallback.Strategy>
}

export interface CallPolicy {
  /** The settings of the call's pipeline (Pipeline.ts). */
  readonly settings: (call: CallOptions) => Pipeline.Settings
  /** The call's place in its backend's admission line (Admission.ts). */
  readonly line: (model: string, call: CallOptions) => Admission.Request
  /** The strategies tried, in order, when the call fails for good (Fallback.ts). */
  readonly fallbacks: (
    spec: { readonly reply: unknown },
    model: string,
    call: CallOptions
  ) => ReadonlyArray<Fallback.Strategy>
}

/** The call's class in its backend's queue. */
export const priority = (call: CallOptions): Priority => call.priority ?? "normal"

/** Whether the call waits for room in a full queue. */
export const wait = (call: CallOptions): boolean => call.wait ?? true

/** What the pipeline needs of one call of `spec` (unary or streamed). */
export const pipelineCall = <A>(
  spec: { readonly method: string; readonly tokens: (answer: A) => number },
  model: string,
  call: CallOptions,
  admitted: Admission.Admitted | undefined
): Pipeline.Call<A> => ({
  method: spec.method,
  model,
  tokens: spec.tokens,
  priority: priority(call),
  wait: wait(call),
  admitted
})

export const make = (options: Options, hedger: Hedge.Hedger): CallPolicy => {
  const fallbacksByModel = new Map(
    Object.entries(options.fallbacks ?? {}).map(([model, list]) => [normalizeName(model), list])
  )
  const defaultFallbacks = options.defaultFallbacks ?? [Fallback.stale]
  // made once; a call with its own timeout gets its own copy
  const timeouts: Timeouts.Options = { ...Timeouts.defaults, ...options.timeouts }
  const shared: Pipeline.Settings = { retry: options.retry ?? {}, hedger, timeouts }
  const settings = (call: CallOptions): Pipeline.Settings =>
    call.timeout === undefined ? shared : { ...shared, timeouts: { ...timeouts, deadline: call.timeout } }
  return {
    settings,
    line: (model, call) => ({
      model,
      priority: priority(call),
      wait: wait(call),
      deadline: settings(call).timeouts.deadline
    }),
    fallbacks: (spec, model, call) =>
      (call.fallbacks ?? fallbacksByModel.get(normalizeName(model)) ?? defaultFallbacks).filter(
        (s) => s._tag !== "default" || spec.reply
      )
  }
}
