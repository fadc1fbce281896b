/**
 * Keyed slots for a library user's own work: one `Slots` per key (a backend URL, or any name the user picks),
 * created on first use, plus a snapshot of all of them. The engine does not use it (each `Backends` entry owns
 * its `Slots`); it is the Layer of the "Scheduler slots" part for apps that queue their own calls. Exported as
 * `KeyedSlots`, and as `Scheduler`, its name before.
 *
 * Choices:
 * - The options given when a key is first seen stay with it (as the rate limiter's buckets do); later calls with
 *   the same key get the same slots whatever options they pass.
 * - A plain Map read and filled inside one `Effect.sync`, so two fibers asking for a new key at once get one
 *   `Slots` (creating one is synchronous and cheap).
 */
import { Effect } from "effect"
import * as Slots from "./Slots.js"

export class KeyedSlots extends Effect.Service<KeyedSlots>()("sluice/KeyedSlots", {
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
