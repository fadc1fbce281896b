/**
 * An instant by which the current unary exchange must be answered, enforced by the transport itself: the engine's
 * per-attempt timeout (Llm/Timeouts.ts `attemptWithin`) on the hot path. The direct exchange (Direct.ts) arms one
 * `setTimeout` beside its request; at the instant it aborts the request and fails with the deadline's error, as the
 * watcher would (Llm/Watch.ts), but without a child fiber and a second timer around the call (that fork was
 * ~85 µs of CPU per call at zero latency: bench/overhead).
 *
 * Choices:
 * - Only clients that enforce it are given a deadline (`enforces`, set by OllamaClient's pooled client); any other
 *   client (a custom HttpClient, a test double) is still watched by Watch.ts, so a deadline is never silently lost.
 * - The instant is on the wall clock (`Date.now()`): the engine hands one down only while Effect's live Clock is in
 *   use; under TestClock the watcher keeps time test-driven.
 * - It is handed down by fiber, not as a FiberRef: `Effect.locally` costs ~20 runtime steps per call, more than
 *   the rest of the attempt's bookkeeping. `within` notes it for the current fiber and the exchange `take`s it
 *   when it starts, which is the next thing the attempt does (the client's method builds its exchange at once),
 *   so it never outlives the attempt it was made for.
 */
import { Effect } from "effect"
import type { OllamaError } from "../Domain/LlmError.js"

export interface Deadline {
  /** Wall-clock ms (`Date.now()`). */
  readonly atMs: number
  /** The failure once the instant passed. */
  readonly error: () => OllamaError
}

/** Deadlines noted for a fiber and not yet taken by its exchange. */
const pending = new WeakMap<object, Deadline>()

/** The deadline noted for `fiber`, removed: the exchange that takes it enforces it. */
export const take = (fiber: object): Deadline | undefined => {
  const deadline = pending.get(fiber)
  if (deadline !== undefined) pending.delete(fiber)
  return deadline
}

const enforcing = new WeakSet<object>()

/** Marks `client` as one whose unary exchanges enforce `current`. */
export const enforced = <C extends object>(client: C): C => {
  enforcing.add(client)
  return client
}

/** Whether `client`'s unary exchanges enforce a deadline handed down here, and can be cut (Cut.ts). */
export const enforces = (client: object): boolean => enforcing.has(client)

/** Runs `effect` (one unary exchange of an enforcing client) with `deadline`. */
export const within =
  (deadline: Deadline) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withFiberRuntime((fiber) => {
      pending.set(fiber, deadline)
      return effect
    })
