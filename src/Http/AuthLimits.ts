/**
 * Per-key limits at the gateway: requests per minute and model tokens per minute (token buckets from
 * Llm/RateLimiter.ts), and calls in flight at once (a semaphore). The limiters of a key are made when the key is
 * first seen, one set per key id, in a registry (Llm/Keyed.ts) that holds them while a request runs under them.
 *
 * Choices:
 * - `rpm` is a bucket of `rpm` requests refilled continuously over a minute (`requestsPerSecond = rpm / 60`,
 *   `burst = rpm`): a fresh key may send `rpm` requests at once, then one every `60 / rpm` seconds.
 * - `maxWait` is 0: a request over its key's limit is refused at once with 429 rather than held open (an HTTP
 *   client has its own timeout and retry policy; `Retry-After` tells it exactly when a token is back).
 * - The concurrency permit is taken before the request token, so a request refused for concurrency does not
 *   spend one. The gateway's middleware wraps the whole answer, body included, so a stream holds its permit
 *   until its last byte.
 * - Model tokens are charged after the answer, from the counts it reports: `prompt_eval_count + eval_count`
 *   (Ollama, unary or the final NDJSON line of a stream) or `usage.total_tokens` (OpenAI, unary, or streams that
 *   asked for `include_usage`). An answer that reports none costs nothing.
 * - The headers follow OpenAI's names: `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
 *   `x-ratelimit-reset-requests` (the time until the bucket is full again, e.g. `12s`), and the `-tokens` trio for
 *   `tpm`. They are sent on every answer of a limited key, 429 or not.
 * - A key's limiters go once no request has used them for `registryDefaults.idleTimeToLive` and their bucket is
 *   full again (a new set would behave the same: a full bucket, no call in flight); a bucket still refilling, or in
 *   debt for model tokens, is kept until full. A key seen again after its set went gets a new one, with the limits
 *   it has then. At most `registryDefaults.capacity` keys have limiters; a new key beyond that displaces the least
 *   recently used idle set at rest, or is refused (`RegistryFull`, a 503 from the middleware) when none is.
 * - With a shared Redis (`SLUICE_REDIS_URL`), the limits are exact across instances: each request's decision is one
 *   Lua script in Redis (Shared/RedisLimiter.ts), and the answer's model tokens are charged there. In Redis `rpm` is
 *   a sliding window: at most `rpm` requests admitted in any minute, all instances together, and `Retry-After` is the
 *   time until the oldest of them is a minute old. A bucket refilled at `rpm / 60` a second (as here) admits
 *   `rpm` plus one more per second a burst lasts, so "60 a minute" would be 60 only for bursts under a second; a
 *   log of admissions counts a minute exactly. `tpm` stays the bucket charged after the answer, and concurrency is
 *   a set of leases that expire (a crashed instance's slots come back after `RedisLimiter.leaseDefaults.ttlMs`;
 *   a running request renews its lease).
 * - While Redis does not answer, `SLUICE_REDIS_FALLBACK=local` (the default) decides with this process's limiters,
 *   as without Redis; `closed` refuses the request with 503. Both are counted in
 *   `sluice_redis_fallbacks_total{use="limits"}`, and the next request after Redis is back decides there again.
 */
import { Data, Effect, Fiber, Option, Schedule } from "effect"
import { SharedStoreUnavailable } from "../Domain/LlmError.js"
import * as Keyed from "../Llm/Keyed.js"
import { type Bucket, makeBucket } from "../Llm/RateLimiter.js"
import { type Connection, Redis } from "../Shared/Redis.js"
import * as RedisLimiter from "../Shared/RedisLimiter.js"
import type { KeyLimits } from "../Store/KeysRepo.js"

/** A key's limit refused a request. */
export class KeyLimited extends Data.TaggedError("KeyLimited")<{
  readonly key: string
  readonly limit: "requests" | "tokens" | "concurrency"
  readonly retryAfterMs: number
  readonly headers: Readonly<Record<string, string>>
}> {
  override get message() {
    return this.limit === "concurrency"
      ? `too many concurrent requests for API key ${this.key}; retry in ${Math.ceil(this.retryAfterMs)} ms`
      : `rate limit on ${this.limit} per minute reached for API key ${this.key}; retry in ${Math.ceil(this.retryAfterMs)} ms`
  }
}

/** What a refusal for concurrency suggests as Retry-After (a slot frees when a call ends; nothing says when). */
export const concurrencyRetryMs = 1_000

/** One key's limiters. */
export interface Limiter {
  /**
   * Runs `effect` under the key's limits, handing it the rate-limit headers for its answer; fails with
   * `KeyLimited` (and does not run it) when a limit refuses.
   */
  readonly run: <A, E, R>(
    effect: (headers: Readonly<Record<string, string>>) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | KeyLimited | SharedStoreUnavailable, R>
  /** Charges the model tokens of an answer (a no-op without `tpm`). */
  readonly charge: (tokens: number) => Effect.Effect<void>
  /** Whether answers should be metered for tokens. */
  readonly metered: boolean
  /** Whether a new set of limiters would behave the same (the bucket is full; calls in flight hold the set). */
  readonly atRest: Effect.Effect<boolean>
}

const bucketLimits = (limits: KeyLimits) =>
  limits.rpm === undefined && limits.tpm === undefined
    ? Option.none()
    : Option.some({
        requestsPerSecond: limits.rpm === undefined ? undefined : limits.rpm / 60,
        burst: limits.rpm,
        tokensPerMinute: limits.tpm,
        maxWait: 0
      })

/** The seconds until a bucket of `size` refilling `size` per minute is full again from `level`. */
const resetIn = (size: number, level: number) => `${Math.max(0, Math.ceil(((size - level) * 60) / size))}s`

/** OpenAI's rate-limit headers for a bucket's levels. */
export const headersOf = (limits: KeyLimits, levels: RedisLimiter.Levels): Record<string, string> => {
  const headers: Record<string, string> = {}
  const trio = (kind: string, size: number, level: number, reset = resetIn(size, level)) => {
    headers[`x-ratelimit-limit-${kind}`] = String(size)
    headers[`x-ratelimit-remaining-${kind}`] = String(Math.max(0, Math.floor(level)))
    headers[`x-ratelimit-reset-${kind}`] = reset
  }
  const window = levels.window
  if (limits.rpm !== undefined && window !== undefined)
    trio("requests", limits.rpm, limits.rpm - window.used, `${Math.ceil(window.resetMs / 1000)}s`)
  else if (limits.rpm !== undefined) trio("requests", limits.rpm, levels.requests)
  if (limits.tpm !== undefined && levels.tokens !== undefined) trio("tokens", limits.tpm, levels.tokens)
  return headers
}

/** Takes a request token; the headers after it, or `KeyLimited` with the headers at the refusal. */
const takeFrom = (bucket: Bucket, key: string, limits: KeyLimits) =>
  bucket.take.pipe(
    Effect.zipRight(bucket.snapshot),
    Effect.map((levels) => headersOf(limits, levels)),
    Effect.catchTag("RateLimited", (e) =>
      Effect.flatMap(bucket.snapshot, (levels) =>
        Effect.fail(
          new KeyLimited({ key, limit: e.limit, retryAfterMs: e.retryAfterMs, headers: headersOf(limits, levels) })
        )
      )
    )
  )

const makeLocal = (key: string, limits: KeyLimits): Effect.Effect<Limiter> =>
  Effect.gen(function* () {
    const bucket = yield* Option.match(bucketLimits(limits), {
      onNone: () => Effect.succeed(Option.none<Bucket>()),
      onSome: (l) => Effect.asSome(makeBucket(`key:${key}`, l))
    })
    const concurrency = limits.concurrency
    const slots = concurrency === undefined ? undefined : yield* Effect.makeSemaphore(Math.max(1, concurrency))
    const take = Option.match(bucket, {
      onNone: () => Effect.succeed<Record<string, string>>({}),
      onSome: (b) => takeFrom(b, key, limits)
    })
    const busy = new KeyLimited({ key, limit: "concurrency", retryAfterMs: concurrencyRetryMs, headers: {} })
    const run: Limiter["run"] = (effect) => {
      const limited = Effect.flatMap(take, effect)
      if (slots === undefined) return limited
      return Effect.flatMap(
        slots.withPermitsIfAvailable(1)(limited),
        Option.match({ onNone: () => Effect.fail(busy), onSome: Effect.succeed })
      )
    }
    return {
      run,
      charge: (tokens) => Option.match(bucket, { onNone: () => Effect.void, onSome: (b) => b.charge(tokens) }),
      metered: limits.tpm !== undefined,
      atRest: Option.match(bucket, { onNone: () => Effect.succeed(true), onSome: (b) => b.atRest })
    } satisfies Limiter
  })

/** `rpm` as a sliding window of a minute in Redis (see the module comment); `tpm` a bucket as here. */
const sharedLimits = (limits: KeyLimits): RedisLimiter.Limits => ({
  requestsPerSecond: undefined,
  burst: 0,
  tokensPerMinute: limits.tpm,
  maxWaitMs: 0,
  window: limits.rpm === undefined ? undefined : { limit: limits.rpm, ms: 60_000 }
})

/** Runs `effect` holding `lease`, renewed while it runs and ended after (a failed end expires by itself). */
const holding = <A, E, R>(
  connection: Connection,
  name: string,
  lease: RedisLimiter.Lease,
  effect: Effect.Effect<A, E, R>
) =>
  Effect.acquireUseRelease(
    Effect.forkDaemon(
      Effect.interruptible(
        RedisLimiter.renew(connection, name, lease).pipe(
          Effect.ignore,
          Effect.repeat(Schedule.spaced(RedisLimiter.leaseDefaults.renewEvery)),
          Effect.delay(RedisLimiter.leaseDefaults.renewEvery)
        )
      )
    ),
    () => effect,
    (renewing) =>
      Effect.zipRight(Fiber.interrupt(renewing), Effect.ignore(RedisLimiter.release(connection, name, lease)))
  )

/** The limits of `key` kept in Redis for every instance; `local` decides while Redis does not answer. */
const makeShared = (connection: Connection, key: string, limits: KeyLimits, local: Limiter): Limiter => {
  const name = `key:${key}`
  const shared = sharedLimits(limits)
  const unavailable = new SharedStoreUnavailable({ use: "limits", scope: `API key ${key}`, retryAfterMs: 1_000 })
  const run = <A, E, R>(
    effect: (headers: Readonly<Record<string, string>>) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | KeyLimited | SharedStoreUnavailable, R> =>
    Effect.suspend(() => {
      const lease = limits.concurrency === undefined ? undefined : RedisLimiter.lease(Math.max(1, limits.concurrency))
      return Effect.matchEffect(RedisLimiter.take(connection, name, shared, lease), {
        onFailure: () => RedisLimiter.whenAway(connection, local.run(effect), Effect.fail(unavailable)),
        onSuccess: (outcome): Effect.Effect<A, E | KeyLimited, R> => {
          const headers = headersOf(limits, outcome.levels)
          if (outcome._tag === "Refused") {
            const retryAfterMs = outcome.limit === "concurrency" ? concurrencyRetryMs : outcome.retryAfterMs
            return Effect.fail(new KeyLimited({ key, limit: outcome.limit, retryAfterMs, headers }))
          }
          return lease === undefined ? effect(headers) : holding(connection, name, lease, effect(headers))
        }
      })
    })
  const charge = (tokens: number) =>
    tokens > 0 && limits.tpm !== undefined
      ? Effect.catchAll(RedisLimiter.charge(connection, name, shared, tokens), () =>
          RedisLimiter.whenAway(connection, local.charge(tokens), Effect.void)
        )
      : Effect.void
  return { run, charge, metered: local.metered, atRest: local.atRest }
}

/**
 * A key's limiters: in Redis when one is configured (`Redis`), exact across instances, with the per-process ones as
 * the fallback while it does not answer; else the per-process ones alone.
 */
const makeLimiter = (key: string, limits: KeyLimits): Effect.Effect<Limiter> =>
  Effect.gen(function* () {
    const local = yield* makeLocal(key, limits)
    const redis = yield* Redis
    return Option.isSome(redis) ? makeShared(redis.value, key, limits, local) : local
  })

/** The registry's bounds: limiters at rest go after `idleTimeToLive` unused; `capacity` keys at most. */
export const registryDefaults = { idleTimeToLive: "10 minutes", capacity: 10_000 } as const

/** The limiters of the keys in use (see the module comment). */
export const makeRegistry = Effect.map(
  Keyed.make({
    name: "API key limits",
    acquire: (id: string, limits: KeyLimits) => makeLimiter(id, limits),
    ...registryDefaults,
    keep: (limiter) => Effect.map(limiter.atRest, (atRest) => !atRest)
  }),
  (keyed) => ({
    /** Runs `f` with the limiters of key `id` held; `limits` apply when the key is first seen. */
    withLimiter: <A, E, R>(id: string, limits: KeyLimits, f: (limiter: Limiter) => Effect.Effect<A, E, R>) =>
      keyed.use(id, limits, f),
    /** The ids of the keys with limiters. */
    keys: Effect.map(keyed.entries, (entries) => entries.map(([id]) => id))
  })
)

export type Registry = Effect.Effect.Success<typeof makeRegistry>
