/**
 * The shared stores' health components for the gateway's health service (Http/HealthRoutes.ts): the `redis`
 * component (Observability/HealthShared.ts) over the configured connection, or none without `SLUICE_REDIS_URL`.
 */
import { Duration, Effect, Option } from "effect"
import type { Component } from "../Observability/Health.js"
import * as HealthShared from "../Observability/HealthShared.js"
import { Redis } from "./Redis.js"

/**
 * The components of the shared stores in use (none when Redis is not configured). Each answer is awaited for
 * three quarters of the health check's `timeout`, so a Redis that hangs is reported degraded, not timed out.
 */
export const components = (timeout: Duration.DurationInput): Effect.Effect<ReadonlyArray<Component>> =>
  Effect.map(Redis, (redis) =>
    Option.match(redis, {
      onNone: () => [],
      onSome: (connection) => [
        HealthShared.redis({
          url: connection.url,
          fallback: connection.fallback,
          ping: connection
            .run("ping", (client) => client.ping())
            .pipe(
              Effect.timeoutFail({
                duration: Duration.times(Duration.decode(timeout), 0.75),
                onTimeout: () => ({
                  message: `no answer within ${Duration.format(Duration.times(Duration.decode(timeout), 0.75))}`
                })
              })
            )
        })
      ]
    })
  )
