/**
 * The `redis` health component of a scale-out deployment (docs/scale-out.md), present only when `SLUICE_REDIS_URL`
 * is set. Like HealthComponents.ts, it declares the small shape it reads (`RedisSource`), so Observability never
 * imports Shared; Shared/RedisHealth.ts makes one from the connection.
 *
 * - ok while Redis answers a PING; degraded, never down, when it does not: every instance keeps serving with the
 *   fallback in force (`SLUICE_REDIS_FALLBACK`), so a Redis outage must not take the fleet out of the load
 *   balancer. Not critical for readiness either, for the same reason.
 * - The detail names the (redacted) URL and the fallback; `sluice_shared_store_up{store="redis"}` follows it.
 */
import { Effect, Metric } from "effect"
import type { Component, Result } from "./Health.js"
import * as Metrics from "./Metrics.js"

/** The shared Redis as health reads it. */
export interface RedisSource {
  /** Without its password. */
  readonly url: string
  readonly fallback: "local" | "closed"
  readonly ping: Effect.Effect<unknown, { readonly message: string }>
}

/** What each fallback means for a user while Redis is away. */
export const fallbackMeaning = {
  local: "limits, the response cache and breakers work per instance (a key may get up to its limit per instance)",
  closed: "calls that need a shared limit are refused with 503; the response cache and breakers work per instance"
} as const

const up = Metric.tagged(Metrics.sharedStoreUp, "store", "redis")

/** The `redis` component. */
export const redis = (source: RedisSource): Component => ({
  name: "redis",
  critical: false,
  check: source.ping.pipe(
    Effect.as<Result>({ status: "ok", detail: { url: source.url, fallback: source.fallback, answers: true } }),
    Effect.catchAll((e) =>
      Effect.succeed<Result>({
        status: "degraded",
        detail: {
          url: source.url,
          fallback: source.fallback,
          answers: false,
          reason: `Redis at ${source.url} does not answer (${e.message}); fallback ${source.fallback} in force: ${fallbackMeaning[source.fallback]}`
        }
      })
    ),
    Effect.tap((result) => Metric.set(up, result.status === "ok" ? 1 : 0))
  )
})
