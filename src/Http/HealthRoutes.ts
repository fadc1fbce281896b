/**
 * `/health` for the gateway so far: which backend kind it serves in front of (`ollama` or `simulator`), and
 * for each backend whether it answers right now and the state of its circuit breaker. 200 when at least one
 * backend answers, else 503. The full five-component health (database, scheduler, process) with
 * `/health/live` and `/health/ready` comes with the observability issue.
 */
import { HttpRouter } from "@effect/platform"
import { Duration, Effect, Either } from "effect"
import { BackendInfo } from "../Lifecycle/Backend.js"
import { type Backend, Backends } from "../Llm/Backends.js"
import * as Respond from "./Respond.js"

const checkTimeout = Duration.seconds(2)

const check = (backend: Backend) =>
  Effect.gen(function* () {
    const version = yield* backend.client.version.pipe(Effect.timeout(checkTimeout), Effect.either)
    const breaker = yield* backend.breaker.state
    const slots = yield* backend.slots.snapshot
    return {
      url: backend.url,
      reachable: Either.isRight(version),
      breaker,
      inFlight: slots.inFlight,
      slots: { limit: slots.limit, queued: slots.queued, oldestWaitMs: slots.oldestWaitMs },
      ...(Either.isRight(version) ? { version: version.right.version } : { error: version.left.message })
    }
  })

const health = Effect.gen(function* () {
  const info = yield* BackendInfo
  const backends = yield* Backends
  const checks = yield* Effect.forEach(backends.all, check, { concurrency: "unbounded" })
  const up = checks.some((c) => c.reachable)
  return Respond.json(
    { status: up ? "ok" : "down", backend: info.kind, requested: info.requested, backends: checks },
    up ? 200 : 503
  )
})

export const routes = HttpRouter.empty.pipe(HttpRouter.get("/health", health))
