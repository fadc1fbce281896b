/**
 * The scheduler: one `Slots` per backend key (a backend URL, or any name a library user picks for their own
 * work), created on first use, plus a snapshot of all of them.
 *
 * Choices:
 * - The options given when a key is first seen stay with it (as the rate limiter's buckets do); later calls with
 *   the same key get the same slots whatever options they pass.
 * - A plain Map read and filled inside one `Effect.sync`, so two fibers asking for a new key at once get one
 *   `Slots` (creating one is synchronous and cheap).
 */
import { Effect } from "effect"
import * as Slots from "./Slots.js"

export class Scheduler extends Effect.Service<Scheduler>()("sluice/Scheduler", {
  accessors: true,
  sync: () => {
    const all = new Map<string, Slots.Slots>()

    /** The slots of `key`, created with `options` the first time. */
    const slots = (key: string, options: Slots.Options): Effect.Effect<Slots.Slots> =>
      Effect.sync(() => {
        const existing = all.get(key)
        if (existing !== undefined) return existing
        const created = Slots.unsafeMake(options)
        all.set(key, created)
        return created
      })

    /** Every key's snapshot. */
    const snapshot: Effect.Effect<Readonly<Record<string, Slots.Snapshot>>> = Effect.suspend(() =>
      Effect.map(
        Effect.forEach(Array.from(all), ([key, s]) => Effect.map(s.snapshot, (snap) => [key, snap] as const)),
        (entries) => Object.fromEntries(entries)
      )
    )

    return { slots, snapshot } as const
  }
}) {}
