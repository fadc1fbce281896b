/**
 * Keyed slots for a library user's own work: one `Slots` per key (a backend URL, or any name the user picks),
 * created on first use, plus a snapshot of all of them. The engine does not use it (each `Backends` entry owns
 * its `Slots`); it is the Layer of the "Scheduler slots" part for apps that queue their own calls. Exported as
 * `KeyedSlots`, and as `Scheduler`, its name before.
 *
 * Choices:
 * - The options given when a key is first seen stay with it (as the rate limiter's buckets do); later calls with
 *   the same key get the same slots whatever options they pass.
 * - Kept in a registry (Llm/Keyed.ts): slots with calls in flight or waiting are kept; slots with nothing in
 *   flight, not looked up for `registryDefaults.idleTimeToLive`, are dropped, and an adaptive limit they learned is
 *   learned again from its initial value (latencies ten idle minutes old say little about the backend now). Look
 *   slots up per use: ones kept past their idle time and then looked up again have a newer twin. At most
 *   `registryDefaults.capacity` keys; a new key beyond that drops the least recently used idle slots, or fails with
 *   `RegistryFull` when every key has work.
 */
import { Effect } from "effect"
import * as Keyed from "../Keyed.js"
import * as Slots from "./Slots.js"

/** The registry's bounds: idle slots go after `idleTimeToLive`; `capacity` keys at most. */
export const registryDefaults = { idleTimeToLive: "10 minutes", capacity: 1_000 } as const

/** Slots with work in flight or waiting. */
const busy = (slots: Slots.Slots): Effect.Effect<boolean> =>
  Effect.map(slots.snapshot, (s) => s.inFlight + s.queued + s.blocked > 0)

export class KeyedSlots extends Effect.Service<KeyedSlots>()("sluice/KeyedSlots", {
  accessors: true,
  scoped: Effect.gen(function* () {
    const registry = yield* Keyed.make({
      name: "keyed slots",
      acquire: (_key: string, options: Slots.Options) => Effect.sync(() => Slots.unsafeMake(options)),
      ...registryDefaults,
      keep: busy
    })

    /** The slots of `key`, created with `options` the first time. */
    const slots = (key: string, options: Slots.Options) => registry.lookup(key, options)

    /** Every key's snapshot. */
    const snapshot: Effect.Effect<Readonly<Record<string, Slots.Snapshot>>> = Effect.flatMap(
      registry.entries,
      (entries) =>
        Effect.map(
          Effect.forEach(entries, ([key, s]) => Effect.map(s.snapshot, (snap) => [key, snap] as const)),
          (pairs) => Object.fromEntries(pairs)
        )
    )

    return { slots, snapshot } as const
  })
}) {}
