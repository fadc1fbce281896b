/**
 * The engine's own counters (`Llm.stats`): calls, retries, and answers a fallback gave. The metrics
 * (Observability/Recorders.ts) are separate; a retry is recorded in both.
 */
import { Effect } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import * as Recorders from "../Observability/Recorders.js"
import type * as Fallback from "./Fallback.js"

export interface Stats {
  readonly calls: number
  readonly retries: number
  readonly fallbacks: Readonly<Record<string, number>>
}

export interface CallStats {
  readonly get: Effect.Effect<Stats>
  /** Counts a call that was admitted (or skipped the line). */
  readonly countCall: Effect.Effect<void>
  /** `countCall`, synchronously (for a stage that counts inside a step of its own). */
  readonly count: () => void
  /** Counts (and records) a retry of a call of `method`. */
  readonly onRetry: (method: string) => (error: LlmError) => Effect.Effect<void>
  /** Counts an answer by the path that produced it (nothing for the primary path). */
  readonly onServed: (served: Fallback.Served) => Effect.Effect<void>
}

/** Plain counters changed in one synchronous step each (a call counts itself on the hot path). */
export const make: Effect.Effect<CallStats> = Effect.sync(() => {
  let calls = 0
  let retries = 0
  const fallbacks: Record<string, number> = {}
  return {
    get: Effect.sync((): Stats => ({ calls, retries, fallbacks: { ...fallbacks } })),
    countCall: Effect.sync(() => {
      calls += 1
    }),
    count: () => {
      calls += 1
    },
    onRetry: (method) => (error) =>
      Effect.zipRight(
        Effect.sync(() => {
          retries += 1
        }),
        Recorders.recordRetry(method, error)
      ),
    onServed: (served) =>
      served === "primary"
        ? Effect.void
        : Effect.sync(() => {
            fallbacks[served] = (fallbacks[served] ?? 0) + 1
          })
  }
})
