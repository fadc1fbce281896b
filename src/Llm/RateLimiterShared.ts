/**
 * The engine's rate limit of one backend kept in the shared Redis (`SLUICE_REDIS_URL`), so that N instances together
 * send a backend no more than its configured rate (docs/scale-out.md). RateLimiter.ts makes one when `Redis` is
 * present and the bucket has a limit; an unlimited bucket (the default) never asks Redis.
 *
 * Choices:
 * - One round trip per call: the take is one Lua script (Shared/RedisLimiter.ts) that refills, decides and, for a
 *   caller that must wait within its `maxWait`, reserves its token; the caller then sleeps that long here (a caller
 *   interrupted while it sleeps gives its token back). Model tokens are charged after the call without holding it:
 *   the charge goes out in the background, so the answer is not delayed by a second round trip.
 * - Instances take in the order Redis sees them: the FIFO line of the local bucket becomes the order of arrival at
 *   Redis, and a charge made while a caller sleeps delays later callers, not that one.
 * - While Redis does not answer: `SLUICE_REDIS_FALLBACK=local` (the default) takes from this process's own bucket
 *   (the same limits, per process, as without Redis); `closed` refuses the call with `SharedStoreUnavailable` (503).
 *   Both are counted in `sluice_redis_fallbacks_total{use="limits"}`; the next call after Redis is back asks it again.
 * - `snapshot` reports the levels of the last answer from Redis (no round trip for the sampler) and the callers of
 *   this process sleeping for their turn.
 */
import { Duration, Effect, Ref } from "effect"
import { RateLimited, SharedStoreUnavailable } from "../Domain/LlmError.js"
import type { Connection } from "../Shared/Redis.js"
import * as RedisLimiter from "../Shared/RedisLimiter.js"
import type { Bucket, Events } from "./RateLimiter.js"

/** The resolved limits of the bucket (RateLimiter.ts). */
export interface Resolved {
  readonly rps: number
  readonly burst: number
  readonly tpm: number | undefined
  readonly maxWaitMs: number
}

/** A bucket of `scope` (a backend URL) in Redis; `local` decides while Redis does not answer. */
export const make = (
  connection: Connection,
  scope: string,
  r: Resolved,
  local: Bucket,
  events: Events
): Effect.Effect<Bucket> =>
  Effect.gen(function* () {
    const name = `rate:${scope}`
    const limits: RedisLimiter.Limits = {
      requestsPerSecond: r.rps === Infinity ? undefined : r.rps,
      burst: r.rps === Infinity ? 0 : r.burst,
      tokensPerMinute: r.tpm,
      maxWaitMs: r.maxWaitMs
    }
    const levels = yield* Ref.make<RedisLimiter.Levels>({
      requests: r.burst,
      tokens: r.tpm
    })
    const sleeping = yield* Ref.make(0)
    const unavailable = new SharedStoreUnavailable({ use: "limits", scope, retryAfterMs: 1_000 })

    const sleep = (waitMs: number) =>
      Effect.zipRight(
        events.waited,
        Effect.acquireUseRelease(
          Ref.update(sleeping, (n) => n + 1),
          () =>
            Effect.sleep(Duration.millis(waitMs)).pipe(
              Effect.onInterrupt(() => Effect.ignore(RedisLimiter.refund(connection, name, limits)))
            ),
          () => Ref.update(sleeping, (n) => n - 1)
        )
      )

    const take: Bucket["take"] = Effect.matchEffect(RedisLimiter.take(connection, name, limits), {
      onFailure: () => RedisLimiter.whenAway(connection, local.take, Effect.fail(unavailable)),
      onSuccess: (outcome) =>
        Effect.zipRight(
          Ref.set(levels, outcome.levels),
          outcome._tag === "Admitted"
            ? outcome.waitMs > 0
              ? sleep(outcome.waitMs)
              : Effect.void
            : Effect.zipRight(
                events.rejected(outcome.limit === "tokens" ? "tokens" : "requests"),
                Effect.fail(
                  new RateLimited({
                    scope,
                    limit: outcome.limit === "tokens" ? "tokens" : "requests",
                    retryAfterMs: outcome.retryAfterMs
                  })
                )
              )
        )
    })

    const settle = (tokens: number) =>
      RedisLimiter.charge(connection, name, limits, tokens).pipe(
        Effect.flatMap((after) => Ref.set(levels, after)),
        Effect.catchAll(() => RedisLimiter.whenAway(connection, local.charge(tokens), Effect.void))
      )

    return {
      take,
      // bounded by the command timeout (SLUICE_REDIS_TIMEOUT), so a daemon fiber cannot linger
      charge: (tokens) =>
        r.tpm === undefined || !(tokens > 0) ? Effect.void : Effect.asVoid(Effect.forkDaemon(settle(tokens))),
      charges: r.tpm !== undefined,
      limit: (effect) => Effect.zipRight(take, effect),
      snapshot: Effect.map(Effect.zip(Ref.get(levels), Ref.get(sleeping)), ([l, waiting]) => ({
        requests: l.requests,
        tokens: l.tokens,
        waiting
      })),
      atRest: Effect.zipWith(local.atRest, Ref.get(sleeping), (atRest, waiting) => atRest && waiting === 0)
    } satisfies Bucket
  })
