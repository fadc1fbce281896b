/**
 * Token buckets, sliding windows and concurrency leases kept in the shared Redis, so that instances together apply one
 * limit (docs/scale-out.md): the per-key limits of the gateway (Http/AuthLimits.ts) and the engine's per-backend
 * rate limits (Llm/RateLimiter.ts). Each decision is one Lua script run atomically by Redis: one round trip.
 *
 * Choices:
 * - Lua scripts through our own connection (`defineCommand`, sent by SHA, resent whole after a Redis restart), not
 *   @effect/experimental's RateLimiter with its Redis store: that store opens a second ioredis client of its own
 *   (outside `SLUICE_REDIS_*`'s fail-fast settings and metrics), sets its token-bucket keys without expiry (they
 *   would never leave Redis), counts whole tokens per refill interval from each caller's clock, and has no post-hoc
 *   charge, no reservation with a maximum wait and no concurrency. The scripts here keep Sluice's own semantics
 *   (Llm/RateLimiter.ts): continuous refill, a request bucket and a model-token bucket that may go into debt.
 * - The clock is Redis's (`TIME` inside the script), so instances whose clocks differ still agree on one refill.
 * - A bucket is one hash `<prefix>limits:{<name>}` (`r` requests, `t` model tokens, `at` ms of the last refill). A
 *   missing hash is a full bucket, so each write sets the hash to expire when the bucket would be full again (plus a
 *   second), and a full bucket is deleted: nothing stays behind a key that is no longer used.
 * - A window (an API key's `rpm`) is a sorted set `<prefix>limits:{<name>}:requests` of the requests admitted,
 *   scored by their time: at most `limit` in any `ms`, exactly; a refused request is not added; Retry-After is the
 *   time until the oldest leaves the window. It holds `limit` members at most and expires `ms` after its last write.
 * - Waiting is a reservation: a caller whose wait fits its `maxWaitMs` takes its token now (the level goes below
 *   zero) and sleeps for the wait the script returned; one that leaves early gives it back (`refund`). A charge made
 *   while a caller sleeps does not push its admission further out (the local bucket would): it delays later callers.
 * - Concurrency is a sorted set of leases `<prefix>limits:{<name>}:leases` scored by their expiry (Redis time). A
 *   call's lease is renewed while it runs and removed when it ends; a crashed instance's leases expire on their own
 *   and are dropped by the next take, so its slots come back after at most one lease time-to-live. The set itself
 *   expires a lease time-to-live after its last write.
 * - The `{<name>}` hash tag puts a name's keys in one Redis Cluster slot, as a script over them needs.
 */
import { Effect, Metric } from "effect"
import type { Redis as IoRedis } from "ioredis"
import { randomUUID } from "node:crypto"
import * as Metrics from "../Observability/Metrics.js"
import type { Connection, RedisError } from "./Redis.js"
import { chargeScript, refundScript, renewScript, takeScript } from "./RedisLimiterScripts.js"

/** One bucket's limits; `undefined` is no limit. */
export interface Limits {
  /** Request tokens refilled per second. */
  readonly requestsPerSecond: number | undefined
  /** The request bucket's size. */
  readonly burst: number
  /** Model tokens per minute, charged after a call. */
  readonly tokensPerMinute: number | undefined
  /** The longest a caller may wait for its turn; 0: refused at once. */
  readonly maxWaitMs: number
  /** At most `limit` requests in any `ms` (a sliding window; admitted requests only), besides the bucket. */
  readonly window?: { readonly limit: number; readonly ms: number } | undefined
}

/** A call's lease on one of `limit` slots, for `ttlMs` unless renewed. */
export interface Lease {
  readonly id: string
  readonly limit: number
  readonly ttlMs: number
}

/** A lease's time-to-live in Redis, and how often a running call renews it. */
export const leaseDefaults = { ttlMs: 30_000, renewEvery: "10 seconds" } as const

const instance = randomUUID()
let ids = 0

/** A name unique across instances, for a lease or a request in a window. */
const newId = () => `${instance}:${ids++}`

/** A new lease on one of `limit` slots. */
export const lease = (limit: number): Lease => ({ id: newId(), limit, ttlMs: leaseDefaults.ttlMs })

/**
 * The levels after a decision: the request bucket's, the model-token bucket's (undefined without that limit), and
 * with a window the requests in it and the time until it is empty.
 */
export interface Levels {
  readonly requests: number
  readonly tokens: number | undefined
  readonly window?: { readonly used: number; readonly resetMs: number } | undefined
}

export type Outcome =
  | { readonly _tag: "Admitted"; readonly waitMs: number; readonly levels: Levels }
  | {
      readonly _tag: "Refused"
      readonly limit: "requests" | "tokens" | "concurrency"
      readonly retryAfterMs: number
      readonly levels: Levels
    }

type Reply = [tag: string, n: string, requests: string, tokens: string, used: string, resetMs: string]

interface Commands {
  sluiceLimitsTake(bucket: string, leases: string, window: string, ...args: Array<string | number>): Promise<Reply>
  sluiceLimitsCharge(bucket: string, ...args: Array<string | number>): Promise<Reply>
  sluiceLimitsRefund(bucket: string, ...args: Array<string | number>): Promise<Reply>
  sluiceLimitsRenew(leases: string, ...args: Array<string | number>): Promise<number>
}

const defined = new WeakSet<IoRedis>()

/** The scripts as commands of `client`, defined once per client. */
const commands = (client: IoRedis): Commands => {
  if (!defined.has(client)) {
    client.defineCommand("sluiceLimitsTake", { numberOfKeys: 3, lua: takeScript })
    client.defineCommand("sluiceLimitsCharge", { numberOfKeys: 1, lua: chargeScript })
    client.defineCommand("sluiceLimitsRefund", { numberOfKeys: 1, lua: refundScript })
    client.defineCommand("sluiceLimitsRenew", { numberOfKeys: 1, lua: renewScript })
    defined.add(client)
  }
  return client as unknown as Commands
}

/** The Redis keys of the limiter named `name` (e.g. `key:<id>`, `backend:<url>`). */
export const keysOf = (connection: Connection, name: string) => {
  const bucket = `${connection.prefix}limits:{${name}}`
  return { bucket, leases: `${bucket}:leases`, window: `${bucket}:requests` } as const
}

/** ARGV 1-3 of every bucket script: -1 is no limit (Lua has no Infinity). */
const bucketArgs = (limits: Limits) => {
  const rps = limits.requestsPerSecond
  const unlimited = rps === undefined || rps === Infinity
  return [unlimited ? -1 : rps, unlimited ? 0 : limits.burst, limits.tokensPerMinute ?? -1]
}

const levelsOf = (limits: Limits, reply: Reply): Levels => ({
  requests: Number(reply[2]),
  tokens: limits.tokensPerMinute === undefined ? undefined : Number(reply[3]),
  window: limits.window === undefined ? undefined : { used: Number(reply[4]), resetMs: Number(reply[5]) }
})

/** Takes a request token (and a lease), or says which limit refuses and when to come back. */
export const take = (
  connection: Connection,
  name: string,
  limits: Limits,
  lease?: Lease
): Effect.Effect<Outcome, RedisError> => {
  const keys = keysOf(connection, name)
  const window = limits.window
  const args = [
    ...bucketArgs(limits),
    limits.maxWaitMs,
    lease?.limit ?? -1,
    lease?.id ?? "",
    lease?.ttlMs ?? 0,
    window?.limit ?? -1,
    window?.ms ?? 0,
    window === undefined ? "" : newId()
  ]
  return Effect.map(
    connection.run("limits", (c) => commands(c).sluiceLimitsTake(keys.bucket, keys.leases, keys.window, ...args)),
    (reply): Outcome => {
      const levels = levelsOf(limits, reply)
      const n = Number(reply[1])
      return reply[0] === "ok"
        ? { _tag: "Admitted", waitMs: n, levels }
        : { _tag: "Refused", limit: reply[0] as "requests" | "tokens" | "concurrency", retryAfterMs: n, levels }
    }
  )
}

/** Deducts model tokens after a call; the bucket may go into debt. */
export const charge = (connection: Connection, name: string, limits: Limits, tokens: number) =>
  Effect.map(
    connection.run("limits", (c) =>
      commands(c).sluiceLimitsCharge(keysOf(connection, name).bucket, ...bucketArgs(limits), tokens)
    ),
    (reply) => levelsOf(limits, reply)
  )

/** Gives back a request token taken by a caller that left before its turn. */
export const refund = (connection: Connection, name: string, limits: Limits) =>
  Effect.asVoid(
    connection.run("limits", (c) =>
      commands(c).sluiceLimitsRefund(keysOf(connection, name).bucket, ...bucketArgs(limits))
    )
  )

/** Extends a running call's lease by its time-to-live. */
export const renew = (connection: Connection, name: string, lease: Lease) =>
  Effect.asVoid(
    connection.run("limits", (c) =>
      commands(c).sluiceLimitsRenew(keysOf(connection, name).leases, lease.id, lease.ttlMs)
    )
  )

/** Ends a call's lease. */
export const release = (connection: Connection, name: string, lease: Lease) =>
  Effect.asVoid(connection.run("limits", (c) => c.zrem(keysOf(connection, name).leases, lease.id)))

const fallbacks = Metric.tagged(Metrics.redisFallbacks, "use", "limits")

/**
 * What a limiter does instead while Redis does not answer (`SLUICE_REDIS_FALLBACK`): `local`, its per-process
 * decision (the default), or `closed`, a refusal; either way counted in `sluice_redis_fallbacks_total{use="limits"}`.
 */
export const whenAway = <A, E, R, A2, E2, R2>(
  connection: Connection,
  local: Effect.Effect<A, E, R>,
  closed: Effect.Effect<A2, E2, R2>
): Effect.Effect<A | A2, E | E2, R | R2> =>
  Effect.zipRight(
    Metric.increment(fallbacks),
    connection.fallback === "closed" ? (closed as Effect.Effect<A | A2, E | E2, R | R2>) : local
  )
