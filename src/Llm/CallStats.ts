/**
 * The engine's own counters (`Llm.stats`): calls, retries, and answers a fallback gave. The metrics
 * (Observability/Recorders.ts) are separate; a retry is recorded in both.
 */
import { Effect, Ref } from "effect"
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
  /** Counts (and records) a retry of a call of `method`. */
  readonly onRetry: (method: string) => (error: LlmError) => Effect.Effect<void>
  /** Counts an answer by the path that produced it (nothing for the primary path). */
  readonly onServed: (served: Fallback.Served) => Effect.Effect<void>
}

export const make: Effect.Effect<CallStats> = Effect.map(
  Ref.make<Stats>({ calls: 0, retries: 0, fallbacks: {} }),
  (stats) => ({
    get: Ref.get(stats),
    countCall: Ref.update(stats, (s) => ({ ...s, calls: s.calls + 1 })),
    onRetry: (method) => (error) =>
      Effect.zipRight(
        Ref.update(stats, (s) => ({ ...s, retries: s.retries + 1 })),
        Recorders.recordRetry(method, error)
      ),
    onServed: (served) =>
      served === "primary"
        ? Effect.void
        : Ref.update(stats, (s) => ({
            ...s,
            fallbacks: { ...s.fallbacks, [served]: (s.fallbacks[served] ?? 0) + 1 }
          }))
  })
)
