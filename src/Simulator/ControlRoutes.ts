/**
 * The simulator's control API under `/_sim/` (a prefix Ollama never uses): `GET /_sim/stats`,
 * `GET /_sim/faults`, `PUT /_sim/faults` (partial JSON merge, validated) and `POST /_sim/reset`
 * (zeroes the counters). Lets a benchmark or a test steer a running simulator from outside the process.
 */
import type { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import type { State } from "./State.js"
import { validateFaults } from "./Faults.js"
import type { SimulatorStats } from "./Stats.js"
import type { ApiError } from "./Wire.js"
import { fail, json, readJson } from "./Wire.js"

/** The counters, with the loaded models after a keep_alive sweep. */
export const snapshot = (state: State): Effect.Effect<SimulatorStats> =>
  Effect.map(state.scheduler.running, (running) => state.stats.snapshot(running.map((r) => r.config.name)))

export const stats = (state: State) => Effect.map(snapshot(state), json)

export const getFaults = (state: State) => Effect.sync(() => json(state.faults.faults))

export const putFaults = (
  state: State
): Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError, HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(readJson, (body) => {
    const checked = validateFaults(body)
    if (typeof checked === "string") return fail(400, checked)
    state.faults.set(checked)
    return Effect.succeed(json(state.faults.faults))
  })

export const reset = (state: State) =>
  Effect.suspend(() => {
    state.stats.reset()
    return stats(state)
  })
