/**
 * A hand on the exchange an attempt is running, so that a hedge that ended first can end it (Llm/Hedge.ts runs the
 * first attempt of a call on the caller's own fiber, without a child fiber, and needs a way to stop it). The
 * direct exchange (Direct.ts) notes in the `Cut` attached to its fiber how to end it; `end` aborts the request
 * and fails the attempt with an interruption of its fiber, which its stages (slot, breaker, metrics) treat
 * exactly as the interruption of a hedged attempt's fiber. An exchange that starts after the cut ends at once.
 *
 * Handed down by fiber (a WeakMap), as Deadline.ts is, for the same reason: a FiberRef costs more per call.
 */

export interface Cut {
  /** Set while an exchange runs: ends it now. */
  end: (() => void) | undefined
  /** Set once the attempt lost: an exchange about to start ends at once. */
  cut: boolean
}

const attached = new WeakMap<object, Cut>()

/** Attaches `cut` to `fiber` until `detach`. */
export const attach = (fiber: object, cut: Cut): void => {
  attached.set(fiber, cut)
}

export const detach = (fiber: object): void => {
  attached.delete(fiber)
}

/** The cut attached to `fiber`, if any. */
export const of = (fiber: object): Cut | undefined => attached.get(fiber)
