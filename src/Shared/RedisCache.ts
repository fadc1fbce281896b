/**
 * The shared tier of the response cache (docs/scale-out.md): entries every instance reads and writes in Redis, and
 * stampede protection across instances. `Llm/ResponseCache.ts` keeps its in-process LRU and single-flight as the
 * first level and asks this tier only on a local miss; the key layout and scripts are in RedisCacheScripts.ts.
 *
 * The protocol for an identical call in flight on another instance (`getOrCompute`):
 * 1. `claim` (one script): the entry if there is one; else take the lock (SET NX PX `lockTtl`, a random token).
 * 2. The lock holder runs the call, renewing the lock every `lockTtl`/3 while it runs; at the end one script
 *    stores a success (within the bounds), releases the lock and PUBLISHes the slot on `<prefix>cache:done`,
 *    or, after a failure or an interruption, only releases and publishes (failures are never stored).
 * 3. The others wait for that message (one subscription per process, one channel for all slots), and poll every
 *    `poll` as a backstop, since pub/sub is at most once; each wake-up is `claim` again, so when the holder
 *    failed or died (its lock expired: no renewal) one waiter takes the lock over and runs the call itself.
 * 4. The wait is bounded by the call's deadline (`Wait.until`), failing with the caller's timeout error; a
 *    takeover runs within what is left of it.
 *
 * Fallback: a command that fails (Redis away: commands fail fast, Shared/Redis.ts) never fails the call: it runs
 * locally as without Redis, counted in `sluice_redis_fallbacks_total{use="cache"}`. `SLUICE_REDIS_FALLBACK=closed`
 * does not apply here: a cache decides no admission, so refusing calls because it is away would only lose answers.
 *
 * Values are JSON behind a one-byte tag, deflated (level 1) from 4 KiB on when that is smaller; an entry over
 * `maxEntryBytes` is not stored, and its waiters then run the call themselves (one per instance).
 */
import { Clock, Deferred, Effect, Exit, Fiber, FiberId, Metric, Option } from "effect"
import { randomUUID } from "node:crypto"
import { deflateRawSync, inflateRawSync } from "node:zlib"
import * as Metrics from "../Observability/Metrics.js"
import type { Connection, RedisError } from "./Redis.js"
import * as Scripts from "./RedisCacheScripts.js"

export interface Options {
  readonly ttlMs: number
  /** Entries and bytes over the whole deployment. */
  readonly maxEntries: number
  readonly maxBytes: number
  /** The largest entry stored (default 4 MiB, at most `maxBytes`). */
  readonly maxEntryBytes?: number
  /** How long a lock outlives its holder (default 5 s); renewed every third of it. */
  readonly lockTtlMs?: number
  /** How often a waiter checks without a message (default 500 ms). */
  readonly pollMs?: number
}

export const defaults = { maxEntryBytes: 4 * 1024 * 1024, lockTtlMs: 5_000, pollMs: 500 } as const

/** A stored entry and the ms it has left. */
export interface Entry {
  readonly value: unknown
  readonly ttlMs: number
}

/** How a shared lookup was answered: the entry, the call run here, or the answer of another instance's call. */
export interface Answer<A> {
  readonly value: A
  readonly lookup: "hit" | "miss" | "coalesced"
  /** For a hit or a coalesced answer: the entry's ms left. */
  readonly ttlMs?: number | undefined
}

/** How long a waiter may wait (Clock ms; Infinity: no bound) and what it fails with after. */
export interface Wait<E> {
  readonly until: number
  readonly expired: () => E
}

export const noWait: Wait<never> = { until: Infinity, expired: () => undefined as never }

const JSON_TAG = 0x6a // "j"
const DEFLATE_TAG = 0x7a // "z"
const compressFrom = 4096

/** The stored form of a value, or undefined when it cannot be written as JSON. */
export const encode = (value: unknown): Buffer | undefined => {
  let json: string | undefined
  try {
    json = JSON.stringify(value)
  } catch {
    return undefined
  }
  if (json === undefined) return undefined
  const raw = Buffer.from(json, "utf8")
  const deflated = raw.length >= compressFrom ? deflateRawSync(raw, { level: 1 }) : undefined
  return deflated !== undefined && deflated.length < raw.length
    ? Buffer.concat([Buffer.of(DEFLATE_TAG), deflated])
    : Buffer.concat([Buffer.of(JSON_TAG), raw])
}

/** The value of a stored form; undefined when it is not one (an entry written by something else). */
export const decode = (data: Buffer): unknown => {
  try {
    if (data[0] === JSON_TAG) return JSON.parse(data.subarray(1).toString("utf8"))
    if (data[0] === DEFLATE_TAG) return JSON.parse(inflateRawSync(data.subarray(1)).toString("utf8"))
  } catch {
    return undefined
  }
  return undefined
}

/** An entry from a script's answer (`[data, pttl]`), or the script's number; -1 for an entry not ours to read. */
const entryOf = (reply: unknown): Entry | number => {
  if (!Array.isArray(reply)) return Number(reply)
  const value = decode(reply[0] as Buffer)
  return value === undefined ? -1 : { value, ttlMs: Math.max(1, Number(reply[1])) }
}

const countWait = (outcome: "served" | "takeover" | "deadline" | "unavailable") =>
  Metric.increment(Metric.tagged(Metrics.sharedCacheWaits, "outcome", outcome))

/** What a claim found besides an entry. */
type Claim = "lead" | "wait" | "unavailable"

const fallback = Metric.increment(Metric.tagged(Metrics.redisFallbacks, "use", "cache"))

export interface RedisCache {
  /** The entry of `slot`, if any. */
  readonly get: (slot: string) => Effect.Effect<Option.Option<Entry>, RedisError>
  /** The entry, or whether another call holds the lock of `slot` (it would be awaited). */
  readonly peek: (slot: string) => Effect.Effect<Entry | "locked" | "absent", RedisError>
  /** Stores a value (no lock involved); a failure is ignored. */
  readonly put: (slot: string, value: unknown) => Effect.Effect<void>
  /** Removes an entry; a failure is ignored. */
  readonly remove: (slot: string) => Effect.Effect<void>
  /** The protocol of the module comment. */
  readonly getOrCompute: <A, E, R>(
    slot: string,
    compute: Effect.Effect<A, E, R>,
    wait: Wait<E>
  ) => Effect.Effect<Answer<A>, E, R>
}

/** The shared tier over `connection`, for the scope (its subscription to `<prefix>cache:done`). */
export const make = (connection: Connection, options: Options) =>
  Effect.gen(function* () {
    const keys = Scripts.keysOf(connection.prefix)
    const lockTtlMs = options.lockTtlMs ?? defaults.lockTtlMs
    const pollMs = options.pollMs ?? defaults.pollMs
    const maxEntryBytes = Math.min(options.maxEntryBytes ?? defaults.maxEntryBytes, options.maxBytes)
    const instance = randomUUID()
    let tokens = 0
    const waiters = new Map<string, Set<Deferred.Deferred<void>>>()
    const unsubscribe = yield* connection.subscribe(keys.channel, (slot) =>
      waiters.get(slot)?.forEach((waiter) => Deferred.unsafeDone(waiter, Exit.void))
    )
    yield* Effect.addFinalizer(() => Effect.sync(unsubscribe))

    const script = (name: Scripts.Script, args: ReadonlyArray<string | number | Buffer>) =>
      connection.run("cache", (client) => Scripts.call(client, name, true)(...args))
    const storeArgs = (slot: string, token: string, data: Buffer | string, publish: boolean) => [
      keys.value(slot),
      keys.lock(slot),
      keys.index,
      keys.sizes,
      keys.bytes,
      token,
      data,
      options.ttlMs,
      options.maxEntries,
      options.maxBytes,
      slot,
      keys.valuePrefix,
      publish ? keys.channel : ""
    ]
    const storable = (value: unknown): Buffer | "" => {
      const data = encode(value)
      return data !== undefined && data.length <= maxEntryBytes ? data : ""
    }

    const peek = (slot: string) =>
      Effect.map(script("sluiceCachePeek", [keys.value(slot), keys.lock(slot)]), (reply) => {
        const entry = entryOf(reply)
        return typeof entry === "number" ? (entry === 1 ? ("locked" as const) : ("absent" as const)) : entry
      })
    const get = (slot: string) =>
      Effect.map(peek(slot), (found) => (typeof found === "string" ? Option.none() : Option.some(found)))
    const put = (slot: string, value: unknown) =>
      Effect.suspend(() => {
        const data = storable(value)
        return data === "" ? Effect.void : Effect.ignore(script("sluiceCacheStore", storeArgs(slot, "", data, false)))
      })
    const remove = (slot: string) =>
      Effect.ignore(
        script("sluiceCacheRemove", [keys.value(slot), keys.lock(slot), keys.index, keys.sizes, keys.bytes, slot])
      )

    /** Wakes on the slot's message, after `ms`, or never later than that; the waiter is registered at once. */
    const listen = (slot: string) => {
      const waiter = Deferred.unsafeMake<void>(FiberId.none)
      const set = waiters.get(slot) ?? new Set()
      if (set.size === 0) waiters.set(slot, set)
      set.add(waiter)
      const close = Effect.sync(() => {
        set.delete(waiter)
        if (set.size === 0 && waiters.get(slot) === set) waiters.delete(slot)
      })
      const wake = (ms: number) => Effect.raceFirst(Deferred.await(waiter), Effect.sleep(ms))
      return { close, wake }
    }

    /** Runs the call holding the lock (renewed meanwhile); stores a success, releases, publishes. */
    const lead = <A, E, R>(slot: string, token: string, compute: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.fork(Effect.interruptible(renewing(slot, token))), (renewal) =>
          Effect.flatMap(Effect.exit(restore(compute)), (exit) =>
            Fiber.interrupt(renewal).pipe(
              Effect.zipRight(
                Effect.ignore(
                  script(
                    "sluiceCacheStore",
                    storeArgs(slot, token, Exit.isSuccess(exit) ? storable(exit.value) : "", true)
                  )
                )
              ),
              Effect.zipRight(Exit.map(exit, (value): Answer<A> => ({ value, lookup: "miss" })))
            )
          )
        )
      )
    const renewing = (slot: string, token: string) =>
      Effect.sleep(Math.max(1, Math.floor(lockTtlMs / 3))).pipe(
        Effect.zipRight(Effect.ignore(script("sluiceCacheRenew", [keys.lock(slot), token, lockTtlMs]))),
        Effect.forever
      )

    /** Redis did not answer: the call runs here, as without Redis. */
    const locally = <A, E, R>(waited: boolean, compute: Effect.Effect<A, E, R>) =>
      fallback.pipe(
        Effect.zipRight(waited ? countWait("unavailable") : Effect.void),
        Effect.zipRight(Effect.map(compute, (value): Answer<A> => ({ value, lookup: "miss" })))
      )

    /** A takeover runs within what is left of the wait's bound. */
    const within = <A, E, R>(compute: Effect.Effect<A, E, R>, wait: Wait<E>, now: number) =>
      Number.isFinite(wait.until)
        ? Effect.timeoutFail(compute, { duration: Math.max(0, wait.until - now), onTimeout: wait.expired })
        : compute

    /**
     * One `claim`: the entry, the lock taken ("lead"), Redis away ("unavailable"), or someone else's lock ("wait"),
     * in which case it has waited for the slot's message, `poll` or `until`, whichever comes first. The waiter is
     * registered before the claim, so a message between the two is not missed.
     */
    const claimOnce = (slot: string, token: string, until: number): Effect.Effect<Entry | Claim> =>
      Effect.suspend(() => {
        const listener = listen(slot)
        return script("sluiceCacheClaim", [keys.value(slot), keys.lock(slot), token, lockTtlMs]).pipe(
          Effect.map((reply): Entry | Claim => {
            const entry = entryOf(reply)
            return typeof entry !== "number" ? entry : entry === 1 ? "lead" : entry === 0 ? "wait" : "unavailable"
          }),
          Effect.orElseSucceed((): Claim => "unavailable"),
          Effect.tap((claimed) =>
            claimed !== "wait"
              ? Effect.void
              : Effect.flatMap(Clock.currentTimeMillis, (now) =>
                  now < until ? listener.wake(Math.min(pollMs, until - now)) : Effect.void
                )
          ),
          Effect.ensuring(listener.close)
        )
      })

    const getOrCompute = <A, E, R>(
      slot: string,
      compute: Effect.Effect<A, E, R>,
      wait: Wait<E>
    ): Effect.Effect<Answer<A>, E, R> => {
      const token = `${instance}:${++tokens}`
      const round = (waited: boolean): Effect.Effect<Answer<A>, E, R> =>
        Effect.flatMap(claimOnce(slot, token, wait.until), (claimed): Effect.Effect<Answer<A>, E, R> => {
          if (claimed === "unavailable") return locally(waited, compute)
          if (typeof claimed !== "string") {
            const answer: Answer<A> = {
              value: claimed.value as A,
              lookup: waited ? "coalesced" : "hit",
              ttlMs: claimed.ttlMs
            }
            return waited ? Effect.as(countWait("served"), answer) : Effect.succeed(answer)
          }
          return Effect.flatMap(Clock.currentTimeMillis, (now) => {
            if (claimed === "lead") {
              return waited
                ? Effect.zipRight(countWait("takeover"), lead(slot, token, within(compute, wait, now)))
                : lead(slot, token, compute)
            }
            if (now >= wait.until) return Effect.zipRight(countWait("deadline"), Effect.fail(wait.expired()))
            return round(true)
          })
        })
      return round(false)
    }

    return { get, peek, put, remove, getOrCompute } satisfies RedisCache
  })
