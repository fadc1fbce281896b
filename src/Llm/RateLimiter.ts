/**
 * Token-bucket rate limiting per key (a backend URL, later an API key): requests per second with a burst, and
 * optionally model tokens per minute. A caller that finds no token waits in line (backpressure); when its wait
 * would pass `maxWait` it fails at once with `RateLimited` naming the binding limit, with `retryAfterMs` = the
 * time until it would have been admitted (no point sleeping first to fail later).
 *
 * Choices:
 * - Hand-written over `Ref` + `Clock`, not effect's `RateLimiter`: that one cannot fail after a maximum wait, has
 *   no post-hoc charge (model tokens are known only when a call ends), needs a Scope and a refill fiber, and
 *   reports nothing. Here the buckets refill continuously from `Clock` (available = min(burst, level + elapsed
 *   x rate)), so TestClock drives them and nothing runs in the background.
 * - Waiters form a FIFO line. The one at position i sleeps exactly until i + 1 request tokens have accrued and the
 *   model-token bucket is back to >= 0, then looks again. Whoever looks hands the available tokens to the head
 *   of the line in order (and wakes them), so late timers never reorder or lose admissions; tokens that accrue
 *   for waiters in line are theirs even beyond the burst, as if reserved.
 * - A waiter that leaves without a token (interrupted, or past its deadline) wakes those behind it, which
 *   recompute an earlier time: its reservation is given back.
 * - Model tokens are charged after a call and may drive that bucket negative; callers then wait until it has
 *   refilled to zero. A charge made while a caller waits pushes it further out (bounded by its deadline), so the
 *   limit holds up to the size of the calls in flight.
 * - The registry (Llm/Keyed.ts) keeps one bucket per key; the limits given when a key is first seen stay with it.
 *   A bucket that is full with nobody waiting holds nothing a new one would not: idle for `registryDefaults`'
 *   time-to-live, it is dropped; one refilling (or in debt for model tokens) is kept until full. The engine does not
 *   use the registry: Backends.ts makes one bucket per configured backend with `makeBucketWith`.
 * - With a shared Redis (`SLUICE_REDIS_URL`), `makeBucketWith`'s buckets that have a limit are kept there, so that
 *   several instances together respect it (RateLimiterShared.ts: one round trip per call; this process's bucket
 *   decides while Redis does not answer, or with `SLUICE_REDIS_FALLBACK=closed` the call is refused with 503).
 *   `makeBucket`'s buckets are always this process's own.
 */
import { Clock, Deferred, Duration, Effect, Exit, Option, Ref } from "effect"
import { RateLimited, type SharedStoreUnavailable } from "../Domain/LlmError.js"
import { Redis } from "../Shared/Redis.js"
import * as Keyed from "./Keyed.js"
import * as RateLimiterShared from "./RateLimiterShared.js"

/** The limits of one bucket. */
export interface Limits {
  /** Refill rate in requests per second; `Infinity` or `undefined` means no request limit. */
  readonly requestsPerSecond?: number | undefined
  /** Bucket size (the burst admitted at once); default `max(1, ceil(requestsPerSecond))`. */
  readonly burst?: number | undefined
  /** Model tokens (prompt + completion) per minute, charged after each call; `undefined` means no limit. */
  readonly tokensPerMinute?: number | undefined
  /** The longest a caller waits for a token before it fails with `RateLimited`; default 30 seconds; 0 = fail at once. */
  readonly maxWait?: Duration.DurationInput | undefined
}

/**
 * One key's limiter. A bucket shared through Redis may also refuse with `SharedStoreUnavailable` (Redis away,
 * `SLUICE_REDIS_FALLBACK=closed`); a local one never does.
 */
export interface Bucket<E = RateLimited | SharedStoreUnavailable> {
  /** Waits for a request token (and for the model-token bucket to be non-negative). */
  readonly take: Effect.Effect<void, E>
  /** Deducts model tokens after a call; the bucket may go negative, so that later callers wait. */
  readonly charge: (tokens: number) => Effect.Effect<void>
  /** `take`, then run the effect (the effect itself when the bucket has no limit). */
  readonly limit: <A, E2, R>(effect: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2 | E, R>
  /** Whether `charge` counts anything (false: no model-token limit, so a caller may skip it). */
  readonly charges: boolean
  /** Request tokens available now, model tokens (if limited), and callers waiting. */
  readonly snapshot: Effect.Effect<{
    readonly requests: number
    readonly tokens: number | undefined
    readonly waiting: number
  }>
  /** Full with nobody waiting: a new bucket would behave the same (a registry may drop it). */
  readonly atRest: Effect.Effect<boolean>
}

/** The defaults, in one place. */
export const defaults = { maxWait: "30 seconds" } as const

interface Resolved {
  readonly rps: number
  readonly burst: number
  readonly tpm: number | undefined
  readonly maxWaitMs: number
}

interface Waiter {
  readonly id: number
  readonly wake: Deferred.Deferred<void>
}

interface State {
  /** When the buckets were last refilled, in ms. */
  readonly at: number
  readonly requests: number
  /** Model tokens; `Infinity` when unlimited. */
  readonly tokens: number
  readonly queue: ReadonlyArray<Waiter>
}

type Limit = "requests" | "tokens"

type Decision =
  | { readonly _tag: "Admit" }
  | { readonly _tag: "Wait"; readonly delayMs: number }
  | { readonly _tag: "Reject"; readonly limit: Limit; readonly retryAfterMs: number }

/** What a step decided, the waiters to wake, and the next state. */
type Step = readonly [readonly [Decision, ReadonlyArray<Waiter>], State]

/** Observers of a bucket's waits and rejections (the registry counts them). */
export interface Events {
  readonly waited: Effect.Effect<void>
  readonly rejected: (limit: Limit) => Effect.Effect<void>
}

const noEvents: Events = { waited: Effect.void, rejected: () => Effect.void }

const resolve = (limits: Limits): Resolved => {
  const rps = limits.requestsPerSecond
  const unlimited = rps === undefined || rps === Infinity
  const maxWaitMs = Duration.toMillis(Duration.decode(limits.maxWait ?? defaults.maxWait))
  return {
    rps: unlimited ? Infinity : rps,
    burst: unlimited ? Infinity : (limits.burst ?? Math.max(1, Math.ceil(rps))),
    tpm: limits.tokensPerMinute,
    maxWaitMs: Math.max(0, maxWaitMs)
  }
}

const refillLevel = (level: number, cap: number, elapsedMs: number, perMs: number): number =>
  elapsedMs <= 0 || level >= cap ? level : Math.min(cap, level + elapsedMs * perMs)

/** Continuous refill; request tokens that accrue for callers in line are theirs, beyond the burst. */
const refill = (r: Resolved, s: State, now: number): State => {
  const elapsed = now - s.at
  if (elapsed <= 0) return s
  const tokens = r.tpm === undefined ? s.tokens : refillLevel(s.tokens, r.tpm, elapsed, r.tpm / 60_000)
  return { ...s, at: now, requests: refillLevel(s.requests, r.burst + s.queue.length, elapsed, r.rps / 1000), tokens }
}

/** Whole milliseconds until `missing` units accrue at `perUnit` units per `unitMs` (float noise ignored). */
const delayFor = (missing: number, perUnit: number, unitMs: number): number =>
  missing <= 1e-9 ? 0 : Math.max(0, Math.ceil((missing * unitMs) / perUnit - 1e-6))

/** Removes the waiter at `index`; the request tokens that accrued for it beyond the burst go with it. */
const without = (r: Resolved, s: State, index: number): State => {
  const queue = s.queue.filter((_, i) => i !== index)
  return { ...s, queue, requests: Math.min(s.requests, r.burst + queue.length) }
}

/** How long the caller at `position` in line waits for a request token, and for model tokens. */
const delays = (r: Resolved, s: State, position: number): readonly [number, number] => [
  delayFor(position + 1 - s.requests, r.rps, 1000),
  r.tpm === undefined ? 0 : delayFor(-s.tokens, r.tpm, 60_000)
]

/** Hands a token to each waiter at the head of the line while tokens last (they find themselves admitted). */
const drain = (r: Resolved, s: State): readonly [State, ReadonlyArray<Waiter>] => {
  let next = s
  let n = 0
  while (n < s.queue.length && Math.max(...delays(r, next, 0)) === 0) {
    next = { ...next, requests: next.requests - 1 }
    n++
  }
  return n === 0 ? [s, []] : [{ ...next, queue: s.queue.slice(n) }, s.queue.slice(0, n)]
}

/**
 * One atomic look at the bucket by `self`: admitted (directly, or earlier by a hand-off when `queued`), wait
 * in line, or give up because the wait would pass the deadline.
 */
const step = (r: Resolved, state: State, now: number, deadline: number, self: Waiter, queued: boolean): Step => {
  const [s, admitted] = drain(r, refill(r, state, now))
  const index = s.queue.findIndex((w) => w.id === self.id)
  if (queued && index === -1) return [[{ _tag: "Admit" }, admitted], s]
  const [requestsMs, tokensMs] = delays(r, s, index === -1 ? s.queue.length : index)
  const delayMs = Math.max(requestsMs, tokensMs)
  if (delayMs === 0) return [[{ _tag: "Admit" }, admitted], { ...s, requests: s.requests - 1 }]
  if (now + delayMs > deadline) {
    const limit = tokensMs > requestsMs ? "tokens" : "requests"
    const next = index === -1 ? s : without(r, s, index)
    const behind = index === -1 ? [] : next.queue.slice(index)
    return [[{ _tag: "Reject", limit, retryAfterMs: delayMs }, [...admitted, ...behind]], next]
  }
  const queue = index === -1 ? [...s.queue, self] : s.queue.map((w, i) => (i === index ? self : w))
  return [[{ _tag: "Wait", delayMs }, admitted], { ...s, queue }]
}

/** Removes a waiter that leaves without a token; the ones behind it move up. */
const leave =
  (r: Resolved, id: number) =>
  (s: State): readonly [ReadonlyArray<Waiter>, State] => {
    const index = s.queue.findIndex((w) => w.id === id)
    if (index === -1) return [[], s]
    const next = without(r, s, index)
    return [next.queue.slice(index), next]
  }

const wakeAll = (waiters: ReadonlyArray<Waiter>) =>
  Effect.forEach(waiters, (w) => Deferred.succeed(w.wake, undefined), { discard: true })

const pause = (delayMs: number, wake: Deferred.Deferred<void>) =>
  Effect.race(Effect.sleep(Duration.millis(delayMs)), Deferred.await(wake))

const makeState = (r: Resolved) =>
  Effect.flatMap(Clock.currentTimeMillis, (at) =>
    Ref.make<State>({ at, requests: r.burst, tokens: r.tpm ?? Infinity, queue: [] })
  )

/** Takes a token for waiter `id`, waiting in line until `deadline` at most. */
const takeWith = (r: Resolved, state: Ref.Ref<State>, scope: string, events: Events) => {
  const attempt = Effect.fnUntraced(function* (id: number, deadline: number, queued: boolean) {
    const self: Waiter = { id, wake: yield* Deferred.make<void>() }
    const now = yield* Clock.currentTimeMillis
    const [decision, toWake] = yield* Ref.modify(state, (s) => step(r, s, now, deadline, self, queued))
    yield* wakeAll(toWake)
    if (decision._tag === "Admit") return true
    if (decision._tag === "Reject") {
      yield* events.rejected(decision.limit)
      return yield* new RateLimited({ scope, limit: decision.limit, retryAfterMs: decision.retryAfterMs })
    }
    if (!queued) yield* events.waited
    yield* pause(decision.delayMs, self.wake)
    return false
  })
  const waitInLine = Effect.fnUntraced(function* (id: number) {
    const deadline = (yield* Clock.currentTimeMillis) + r.maxWaitMs
    let queued = false
    while (!(yield* attempt(id, deadline, queued))) queued = true
  })
  const giveBack = (id: number) => Effect.flatMap(Ref.modify(state, leave(r, id)), wakeAll)
  return (id: number): Effect.Effect<void, RateLimited> =>
    waitInLine(id).pipe(Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : giveBack(id))))
}

const snapshotOf = (r: Resolved, state: Ref.Ref<State>) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Ref.modify(state, (s) => {
      const next = refill(r, s, now)
      const tokens = r.tpm === undefined ? undefined : next.tokens
      return [{ requests: next.requests, tokens, waiting: next.queue.length }, next] as const
    })
  )

const chargeOf = (r: Resolved, state: Ref.Ref<State>) => (tokens: number) =>
  r.tpm === undefined || !(tokens > 0)
    ? Effect.void
    : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.update(state, (s) => {
          const next = refill(r, s, now)
          return { ...next, tokens: next.tokens - tokens }
        })
      )

/** See `Bucket.atRest`. */
const atRestOf = (r: Resolved, state: Ref.Ref<State>) =>
  Effect.map(
    snapshotOf(r, state),
    (s) => s.waiting === 0 && s.requests >= r.burst && (s.tokens === undefined || s.tokens >= (r.tpm ?? 0))
  )

/** A bucket of this process alone, whose waits and rejections are reported to `events`. */
const makeLocal = (scope: string, limits: Limits, events: Events): Effect.Effect<Bucket<RateLimited>> =>
  Effect.gen(function* () {
    const r = resolve(limits)
    const state = yield* makeState(r)
    const ids = yield* Ref.make(0)
    const unlimited = r.rps === Infinity && r.tpm === undefined
    const takeIn = takeWith(r, state, scope, events)
    const take = unlimited
      ? Effect.void
      : Effect.flatMap(
          Ref.getAndUpdate(ids, (n) => n + 1),
          takeIn
        )
    return {
      take,
      charge: chargeOf(r, state),
      charges: r.tpm !== undefined,
      // no steps of its own without a limit: every attempt passes here
      limit: unlimited ? (effect) => effect : (effect) => Effect.zipRight(take, effect),
      snapshot: snapshotOf(r, state),
      atRest: atRestOf(r, state)
    } satisfies Bucket<RateLimited>
  })

/**
 * The engine's bucket of `scope` (a backend URL), its waits and rejections reported to `events`: shared by every
 * instance through Redis when `Redis` is present and the bucket has a limit (RateLimiterShared.ts, with this
 * process's own bucket as the fallback while Redis does not answer), else this process's own.
 */
export const makeBucketWith = (scope: string, limits: Limits, events: Events): Effect.Effect<Bucket> =>
  Effect.gen(function* () {
    const local = yield* makeLocal(scope, limits, events)
    const redis = yield* Redis
    const r = resolve(limits)
    if (Option.isNone(redis) || (r.rps === Infinity && r.tpm === undefined)) return local
    return yield* RateLimiterShared.make(redis.value, scope, r, local, events)
  })

/** A bucket of this process alone, not counted by a registry (and never shared: the API keys' local limiters). */
export const makeBucket = (scope: string, limits: Limits): Effect.Effect<Bucket<RateLimited>> =>
  makeLocal(scope, limits, noEvents)

/** The registry's counters. */
export interface Stats {
  /** Keys with a live bucket. */
  readonly buckets: number
  /** Callers that had to wait for a token (and were admitted or not). */
  readonly waits: number
  /** Callers refused with `RateLimited`, in all and by the limit that refused them. */
  readonly rejections: number
  readonly rejectionsByLimit: { readonly requests: number; readonly tokens: number }
}

interface Counters {
  readonly waits: number
  readonly requests: number
  readonly tokens: number
}

/** The registry's bounds: buckets at rest go after `idleTimeToLive`; `capacity` keys at most. */
export const registryDefaults = { idleTimeToLive: "10 minutes", capacity: 10_000 } as const

/**
 * The keyed registry: one bucket per key (backend URL, API key), created on first use and then reused; dropped once
 * not looked up for `registryDefaults.idleTimeToLive` while full with nobody waiting. Look a bucket up per use: one
 * kept past its idle time and then looked up again has a newer twin.
 */
export class RateLimiter extends Effect.Service<RateLimiter>()("sluice/RateLimiter", {
  scoped: Effect.gen(function* () {
    const counters = yield* Ref.make<Counters>({ waits: 0, requests: 0, tokens: 0 })
    const events: Events = {
      waited: Ref.update(counters, (c) => ({ ...c, waits: c.waits + 1 })),
      rejected: (limit) => Ref.update(counters, (c) => ({ ...c, [limit]: c[limit] + 1 }))
    }
    const buckets = yield* Keyed.make({
      name: "rate limiter",
      acquire: (key: string, limits: Limits) => makeBucketWith(key, limits, events),
      ...registryDefaults,
      keep: (bucket) => Effect.map(bucket.atRest, (atRest) => !atRest)
    })
    /** The bucket of `key`; `limits` apply when the key is first seen. */
    const bucket = Effect.fn("RateLimiter.bucket")(function* (key: string, limits: Limits) {
      return yield* buckets.lookup(key, limits)
    })
    const stats: Effect.Effect<Stats> = Effect.map(Effect.zip(Ref.get(counters), buckets.entries), ([c, live]) => ({
      buckets: live.length,
      waits: c.waits,
      rejections: c.requests + c.tokens,
      rejectionsByLimit: { requests: c.requests, tokens: c.tokens }
    }))
    return { bucket, stats } as const
  })
}) {}

/** The registry on its own, for a user of the library. */
export const layer = RateLimiter.Default
