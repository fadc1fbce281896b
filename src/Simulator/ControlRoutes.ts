/**
 * The simulator's control API under `/_sim/` (a prefix Ollama never uses): `GET /_sim/stats`,
 * `GET /_sim/faults`, `PUT /_sim/faults` (partial JSON merge, validated) and `POST /_sim/reset`
 * (zeroes the counters). Lets a benchmark or a test steer a running simulator from outside the process.
 */
import type { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import type { Engine } from "./Engine.js"
import { validateFaults } from "./Faults.js"
import type { SimulatorStats } from "./Stats.js"
import type { ApiError } from "./Wire.js"
import { fail, json, readJson } from "./Wire.js"

/** The counters, with the loaded models after a keep_alive sweep. */
export const snapshot = (engine: Engine): Effect.Effect<SimulatorStats> =>
  Effect.map(engine.scheduler.running, (running) => engine.stats.snapshot(running.map((r) => r.config.name)))

export const stats = (engine: Engine) => Effect.map(snapshot(engine), json)

export const getFaults = (engine: Engine) => Effect.sync(() => json(engine.faults.faults))

export const putFaults = (
  engine: Engine
): Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError, HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(readJson, (body) => {
    const checked = validateFaults(body)
    if (typeof checked === "string") return fail(400, checked)
    engine.faults.set(checked)
    return Effect.succeed(json(engine.faults.faults))
  })

export const reset = (engine: Engine) =>
  Effect.suspend(() => {
    engine.stats.reset()
    return stats(engine)
  })
