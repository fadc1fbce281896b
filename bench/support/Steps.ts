/**
 * Counting Effect runtime steps (bench/engine-steps.ts, bench/gateway-steps.ts): a Supervisor that counts the steps
 * (by op) and the fibers started while it is on, and the patch that turns op supervision on for what it watches.
 */
import { Effect, RuntimeFlags, RuntimeFlagsPatch, Supervisor } from "effect"

/** Counts the steps (by op) and the fibers started while `on`. */
export class Counter extends Supervisor.AbstractSupervisor<void> {
  on = false
  steps = 0
  fibers = 0
  readonly byOp = new Map<string, number>()
  get value() {
    return Effect.void
  }
  override onStart() {
    if (this.on) this.fibers++
  }
  override onEffect(_fiber: unknown, effect: unknown) {
    if (!this.on) return
    this.steps++
    const op = (effect as { _op?: string })._op ?? "?"
    this.byOp.set(op, (this.byOp.get(op) ?? 0) + 1)
  }
  /** Steps by op per call, most first, after `calls` calls. */
  perCall(calls: number): string {
    return [...this.byOp]
      .sort((a, b) => b[1] - a[1])
      .map(([op, k]) => `${op} ${Math.round(k / calls)}`)
      .join(", ")
  }
}

/** `effect` supervised by `counter`, with op supervision on (the fibers it starts inherit both). */
export const supervised =
  (counter: Counter) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    effect.pipe(
      Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)),
      Effect.supervised(counter)
    )
