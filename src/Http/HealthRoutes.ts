/**
 * `/health` for the first version of the gateway: which backend it serves in front of (`ollama` or
 * `simulator`), and whether that backend answers right now. The full five-component health (database,
 * breakers, scheduler, process) and `/health/live`, `/health/ready` come with the observability issue.
 */
import { HttpRouter } from "@effect/platform"
import { Duration, Effect, Either } from "effect"
import { BackendInfo } from "../Lifecycle/Backend.js"
import { OllamaClient } from "../Ollama/OllamaClient.js"
import * as Respond from "./Respond.js"

const checkTimeout = Duration.seconds(2)

const health = Effect.gen(function* () {
  const info = yield* BackendInfo
  const client = yield* OllamaClient
  const version = yield* client.version.pipe(Effect.timeout(checkTimeout), Effect.either)
  const up = Either.isRight(version)
  return Respond.json(
    {
      status: up ? "ok" : "down",
      backend: info.kind,
      ollama: {
        url: info.url,
        requested: info.requested,
        reachable: up,
        ...(up ? { version: version.right.version } : { error: version.left.message })
      }
    },
    up ? 200 : 503
  )
})

export const routes = HttpRouter.empty.pipe(HttpRouter.get("/health", health))
