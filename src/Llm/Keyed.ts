/**
 * Keyed resources: the one way Sluice keeps "one X per key" (a breaker per name, a bucket per key, an API key's
 * limiters, a topic's hub), built on effect's `RcMap`, with entries dropped after an idle time-to-live and a bound on
 * their number, so a gateway that sees many keys does not grow without end.
 *
 * Choices:
 * - `RcMap` does the work: one acquisition per key however many fibers ask at once, a scope per entry (its
 *   finalizers run when the entry goes), reference counts (an entry someone holds is never released; one invalidated
 *   while held goes when its last holder lets go), release `idleTimeToLive` after the last holder lets go, and every
 *   entry closed with the registry's scope.
 * - The arguments a key is first seen with (a breaker's options, a bucket's limits) make its entry; later ones are
 *   ignored, as every registry here promised before. RcMap's lookup gets only the key, so the key it is handed is a
 *   `Slot` that carries the first caller's arguments and equals (Equal/Hash) every other slot of the same name.
 * - Holding: `get` holds the entry until the caller's scope closes, `use` while a function runs, `find` holds an
 *   entry only if it exists. `lookup` hands the entry out unheld, for registries whose API returns the entry itself:
 *   its idle time starts at once, so a caller that keeps the entry past it and then looks the key up again gets a
 *   fresh one. Registries whose callers can hold, hold.
 * - State that matters while idle (an open breaker, a bucket in debt): `keep` says an entry still holds it. RcMap's
 *   expiry cannot ask the entry, so a fiber of the registry looks at the idle entries every quarter of the
 *   time-to-live and `RcMap.touch`es the ones to keep, which starts their idle time over (a quarter: a look always
 *   falls in the half time-to-live before an expiry). An entry comes to rest, then goes a time-to-live later.
 * - The bound: at `capacity` entries, a new key evicts the least recently used entry nobody holds and `keep` does
 *   not keep; when there is none it fails with `RegistryFull` rather than drop an entry in use or holding state.
 *   RcMap's own `capacity` refuses even while idle entries wait out their time-to-live, so the registry makes room
 *   itself, counting holders per key (RcMap does not expose its reference counts); new keys are admitted one at a
 *   time, and RcMap's `capacity` stays set as the backstop that makes the bound exact.
 * - `entries` lists the live entries in the order they were made (health and metrics), without holding them.
 */
import { Cause, Clock, Data, Duration, Effect, Equal, Hash, Option, RcMap, Schedule, Scope } from "effect"

/** A new key found the registry at its bound with every entry in use or holding state. */
export class RegistryFull extends Data.TaggedError("RegistryFull")<{
  readonly registry: string
  readonly capacity: number
}> {
  override get message() {
    return `the ${this.registry} registry is full: its ${this.capacity} entries are all in use or holding state; retry later`
  }
}

export interface Options<I, A, E, R> {
  /** Names the registry in `RegistryFull`. */
  readonly name: string
  /**
   * Makes the entry of `key` from the arguments it was first asked with; `Scope` is the entry's own. A failure is
   * kept like an entry until its idle time passes (RcMap's way); the registries here never fail.
   */
  readonly acquire: (key: string, args: I) => Effect.Effect<A, E, R>
  /** How long an entry nobody holds (and `keep` does not keep) lives on. */
  readonly idleTimeToLive: Duration.DurationInput
  /** Entries at most. */
  readonly capacity: number
  /** Whether an idle entry still holds state worth keeping (default: none does). */
  readonly keep?: ((entry: A) => Effect.Effect<boolean>) | undefined
}

export interface Keyed<I, A, E> {
  /** The entry of `key` (made with `args` if missing), held until the caller's scope closes. */
  readonly get: (key: string, args: I) => Effect.Effect<A, E | RegistryFull, Scope.Scope>
  /** Runs `f` with the entry of `key` held. */
  readonly use: <B, E2, R2>(
    key: string,
    args: I,
    f: (entry: A) => Effect.Effect<B, E2, R2>
  ) => Effect.Effect<B, E | E2 | RegistryFull, R2>
  /** The entry of `key`, unheld: its idle time starts now. */
  readonly lookup: (key: string, args: I) => Effect.Effect<A, E | RegistryFull>
  /** The entry of `key` if there is one, held until the caller's scope closes; never makes one. */
  readonly find: (key: string) => Effect.Effect<Option.Option<A>, never, Scope.Scope>
  /** The live entries, in the order they were made. */
  readonly entries: Effect.Effect<ReadonlyArray<readonly [string, A]>>
  /** Drops the entry of `key` (at once, or when its last holder lets go). */
  readonly invalidate: (key: string) => Effect.Effect<void>
}

/** RcMap's key: equal by name, carrying the arguments of whoever asked first. */
class Slot<I> implements Equal.Equal {
  constructor(
    readonly key: string,
    readonly args: I
  ) {}
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof Slot && that.key === this.key
  }
  [Hash.symbol](): number {
    return Hash.string(this.key)
  }
}

interface Entry<I, A> {
  readonly slot: Slot<I>
  readonly value: A
  lastUsed: number
}

/** A registry whose entries live in the caller's scope at most. */
export const make = <I, A, E, R>(options: Options<I, A, E, R>) =>
  Effect.gen(function* () {
    const live = new Map<string, Entry<I, A>>()
    const holds = new Map<string, number>()
    const full = new RegistryFull({ registry: options.name, capacity: options.capacity })
    const ttl = Duration.decode(options.idleTimeToLive)

    /** Records the entry while its RcMap scope is open. */
    const register = (slot: Slot<I>, value: A) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const entry: Entry<I, A> = { slot, value, lastUsed: now }
        live.set(slot.key, entry)
        return Effect.as(
          Effect.addFinalizer(() => Effect.sync(() => live.get(slot.key) === entry && live.delete(slot.key))),
          value
        )
      })
    const map = yield* RcMap.make({
      lookup: (slot: Slot<I>) => Effect.flatMap(options.acquire(slot.key, slot.args), (a) => register(slot, a)),
      idleTimeToLive: ttl,
      capacity: options.capacity
    })
    const admission = yield* Effect.makeSemaphore(1)

    const hold = (key: string) =>
      Effect.acquireRelease(
        Effect.sync(() => holds.set(key, (holds.get(key) ?? 0) + 1)),
        () =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            const n = (holds.get(key) ?? 1) - 1
            if (n > 0) holds.set(key, n)
            else holds.delete(key)
            const entry = live.get(key)
            if (entry !== undefined) entry.lastUsed = now
          })
      )

    const keeps = (entry: Entry<I, A>) =>
      options.keep === undefined ? Effect.succeed(false) : options.keep(entry.value)

    /** At the bound: evicts the least recently used entry nobody holds and `keep` lets go, or fails. */
    const makeRoom = Effect.suspend(() => {
      if (live.size < options.capacity) return Effect.void
      const idle = Array.from(live.values())
        .filter((e) => !holds.has(e.slot.key))
        .sort((a, b) => a.lastUsed - b.lastUsed)
      return Effect.flatMap(
        Effect.findFirst(idle, (e) => Effect.map(keeps(e), (kept) => !kept)),
        Option.match({ onNone: () => Effect.fail(full), onSome: (e) => RcMap.invalidate(map, e.slot) })
      )
    })

    const fetch = (slot: Slot<I>) =>
      RcMap.get(map, slot).pipe(Effect.catchIf(Cause.isExceededCapacityException, () => Effect.fail(full)))

    const get = (key: string, args: I): Effect.Effect<A, E | RegistryFull, Scope.Scope> =>
      Effect.zipRight(
        hold(key),
        Effect.suspend(() => {
          const slot = new Slot(key, args)
          if (live.has(key)) return fetch(slot)
          return admission.withPermits(1)(
            Effect.suspend(() => (live.has(key) ? fetch(slot) : Effect.zipRight(makeRoom, fetch(slot))))
          )
        })
      )

    const use = <B, E2, R2>(key: string, args: I, f: (entry: A) => Effect.Effect<B, E2, R2>) =>
      Effect.acquireUseRelease(
        Scope.make(),
        (scope) => Effect.flatMap(Scope.extend(get(key, args), scope), f),
        (scope, exit) => Scope.close(scope, exit)
      )

    const find = (key: string): Effect.Effect<Option.Option<A>, never, Scope.Scope> =>
      Effect.suspend(() => {
        const entry = live.get(key)
        // should it go between this look and `get`, `get` makes it anew from the same arguments, as a lookup would
        return entry === undefined ? Effect.succeedNone : Effect.option(get(key, entry.slot.args))
      })

    /** Starts the idle time over for the idle entries `keep` keeps. */
    const sweep = Effect.suspend(() =>
      Effect.forEach(
        Array.from(live.values()).filter((e) => !holds.has(e.slot.key)),
        (e) => Effect.flatMap(keeps(e), (kept) => (kept ? RcMap.touch(map, e.slot) : Effect.void)),
        { discard: true }
      )
    )
    if (options.keep !== undefined && Duration.isFinite(ttl) && !Duration.isZero(ttl)) {
      yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(Duration.times(ttl, 0.25))))
    }

    return {
      get,
      use,
      lookup: (key, args) => Effect.scoped(get(key, args)),
      find,
      entries: Effect.sync(() => Array.from(live, ([key, e]) => [key, e.value] as const)),
      invalidate: (key) =>
        Effect.suspend(() => {
          const entry = live.get(key)
          return entry === undefined ? Effect.void : RcMap.invalidate(map, entry.slot)
        })
    } satisfies Keyed<I, A, E>
  })
