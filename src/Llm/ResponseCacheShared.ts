/**
 * The response cache's second level, in the shared Redis of a scale-out deployment (Shared/RedisCache.ts): what
 * `ResponseCache` does on a local miss when `Redis` is configured. Without it, none of this runs and the cache
 * works per process exactly as before.
 *
 * Choices:
 * - The local LRU and single-flight stay the first level: a local hit or an identical call in flight here never
 *   reaches Redis, so one instance sends at most one shared lookup per key at a time, however many callers wait.
 * - A unary local miss runs the cross-instance protocol (`getOrCompute`): the shared entry, or the lock and the
 *   call, or a wait for the other instance's answer, bounded by the call's deadline (`Bound`). Its answer is kept
 *   locally for the time the shared entry has left, so an entry is never fresh longer than the TTL anywhere.
 * - Streams are not coalesced across instances, as they are not within one (ResponseCache.ts): a stream miss
 *   reads the shared entry, and a complete recording is stored there too.
 * - Whether a call skips admission (`answersNow`) also asks Redis when the local level cannot say: a shared entry
 *   (then copied here) or a lock held elsewhere (the call will wait for that answer, not for a backend slot).
 * - Counters: a shared entry counts as a hit, an answer awaited from another instance as coalesced.
 */
import { Cause, Clock, Duration, Effect, Exit, Option } from "effect"
import * as RedisCache from "../Shared/RedisCache.js"
import { Redis } from "../Shared/Redis.js"
import type { CacheStore, Flight } from "./ResponseCacheStore.js"
import * as Timeouts from "./Timeouts.js"

/** The bound of a unary call's wait for another instance: its deadline, less what it already waited. */
export interface Bound<E> {
  readonly deadline: Duration.DurationInput | undefined
  readonly waitedMs: number
  readonly expired: () => E
}

export type Shared = RedisCache.RedisCache

/** The shared level over the configured `Redis`, or undefined without one. */
export const make = (options: { readonly ttlMs: number; readonly maxEntries: number; readonly maxBytes: number }) =>
  Effect.flatMap(Redis, (redis) =>
    Option.match(redis, {
      onNone: () => Effect.succeed(undefined),
      onSome: (connection) => RedisCache.make(connection, options)
    })
  )

const waitOf = <E>(bound: Bound<E> | undefined, now: number): RedisCache.Wait<E> =>
  bound === undefined
    ? RedisCache.noWait
    : { until: Timeouts.deadlineAt(now - bound.waitedMs, bound.deadline), expired: bound.expired }

const interruptedOnly = (exit: Exit.Exit<unknown, unknown>): boolean =>
  Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)

/** The local leader's end after the shared level answered: keep it, tell the local followers, count it. */
const settle = <A, E>(store: CacheStore, slot: string, flight: Flight, exit: Exit.Exit<RedisCache.Answer<A>, E>) =>
  Effect.clockWith((clock) => {
    if (store.flights.get(slot) === flight) store.flights.delete(slot)
    if (Exit.isSuccess(exit)) {
      const { value, lookup, ttlMs } = exit.value
      store.count(lookup === "hit" ? "hits" : lookup === "coalesced" ? "coalesced" : "misses")
      store.store(slot, value, clock.unsafeCurrentTimeMillis(), ttlMs)
    }
    const outcome = Exit.map(exit, (answer) => answer.value)
    flight.done(interruptedOnly(exit) ? Option.none() : Option.some(outcome))
    return Exit.map(exit, ({ value, lookup }) => ({ value, lookup }))
  })

/** The local leader of `slot` asks the shared level (see the module comment), then settles its flight. */
export const lead = <A, E, R>(
  shared: Shared,
  store: CacheStore,
  slot: string,
  flight: Flight,
  compute: Effect.Effect<A, E, R>,
  bound: Bound<E> | undefined,
  restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>
) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.flatMap(Effect.exit(restore(shared.getOrCompute(slot, compute, waitOf(bound, now)))), (exit) =>
      settle(store, slot, flight, exit)
    )
  )

/** A computed (refreshed) answer goes to the shared level too. */
export const put = (shared: Shared | undefined, slot: string, value: unknown): Effect.Effect<void> =>
  shared === undefined ? Effect.void : shared.put(slot, value)

/** A stream's local miss: the shared entry (kept locally), if there is one. */
export const streamEntry = (
  shared: Shared,
  store: CacheStore,
  slot: string
): Effect.Effect<Option.Option<ReadonlyArray<unknown>>> =>
  shared.get(slot).pipe(
    Effect.flatMap((entry) =>
      Effect.clockWith((clock) =>
        Effect.sync(() =>
          Option.map(entry, ({ value, ttlMs }) => {
            store.store(slot, value, clock.unsafeCurrentTimeMillis(), ttlMs)
            return value as ReadonlyArray<unknown>
          })
        )
      )
    ),
    Effect.orElseSucceed(() => Option.none())
  )

/** `answersNow` past the local level: a shared entry (kept locally) or a lock held elsewhere. */
export const answersNow = (shared: Shared, store: CacheStore, slot: string): Effect.Effect<boolean> =>
  shared.peek(slot).pipe(
    Effect.flatMap((found) =>
      typeof found === "string"
        ? Effect.succeed(found === "locked")
        : Effect.clockWith((clock) =>
            Effect.sync(() => {
              store.store(slot, found.value, clock.unsafeCurrentTimeMillis(), found.ttlMs)
              return true
            })
          )
    ),
    Effect.orElseSucceed(() => false)
  )
