/**
 * The simulator's shared state, handed to every route module: config, model list, scheduler, counters,
 * fault injector, the jitter PRNG and the uploaded blobs; plus the checks every inference route makes (model lookup,
 * keep_alive parsing, the pre-scheduling fault).
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import type { KeepAlive } from "../Domain/Common.js"
import type { FaultKind } from "./Faults.js"
import { FaultInjector, internalErrorMessage } from "./Faults.js"
import { Registry } from "./Registry.js"
import * as Scheduler from "./Scheduler.js"
import type { ModelConfig, SimulatorConfig } from "./SimulatorConfig.js"
import { parseKeepAlive } from "./SimulatorConfig.js"
import { Stats } from "./Stats.js"
import { mulberry32 } from "./Text.js"
import { type ApiError, busy, fail, ResetConnection } from "./Wire.js"

export interface State {
  readonly config: SimulatorConfig
  readonly registry: Registry
  readonly scheduler: Scheduler.Scheduler
  readonly stats: Stats
  readonly faults: FaultInjector
  readonly random: () => number
  readonly defaultKeepAliveMs: number
  /** Uploaded blobs (`POST /api/blobs/:digest`): digest (`sha256:<hex>`) to size in bytes. */
  readonly blobs: Map<string, number>
}

export const make = (config: SimulatorConfig): Effect.Effect<State, never, Scope.Scope> =>
  Effect.gen(function* () {
    const stats = new Stats()
    const scheduler = yield* Scheduler.make(config, stats)
    return {
      config,
      registry: new Registry(config.models),
      scheduler,
      stats,
      faults: new FaultInjector(config.faults),
      random: mulberry32(config.seed),
      defaultKeepAliveMs: parseKeepAlive(config.defaultKeepAlive) ?? 300_000,
      blobs: new Map()
    }
  })

/** The model config for `name`, or a 404 with the endpoint's wording. */
export const findModel = (
  state: State,
  name: string,
  notFound: (name: string) => string
): Effect.Effect<ModelConfig, ApiError> => {
  const entry = state.registry.find(name)
  return entry === undefined ? fail(404, notFound(name)) : Effect.succeed(entry.config)
}

export const notFoundQuoted = (name: string) => `model '${name}' not found`
export const notFoundPull = (name: string) => `model "${name}" not found, try pulling it first`

/** keep_alive in ms (request value, else the default); an unparsable string is a 400. */
export const keepAliveMs = (state: State, value: KeepAlive | undefined): Effect.Effect<number, ApiError> => {
  if (value === undefined) return Effect.succeed(state.defaultKeepAliveMs)
  const ms = parseKeepAlive(value)
  return ms === undefined ? fail(400, `time: invalid duration "${value}"`) : Effect.succeed(ms)
}

/** A seeded latency factor in [1 - jitter, 1 + jitter]. */
export const jitterFactor = (state: State, model: ModelConfig): number =>
  model.jitter <= 0 ? 1 : 1 + model.jitter * (2 * state.random() - 1)

/**
 * Draws this request's fault and applies the ones that act before scheduling (500, 503, reset, stall,
 * spike). Yields the fault still to apply while answering (malformed, midStreamError), if any.
 */
export const injectFault = (state: State): Effect.Effect<FaultKind | undefined, ApiError | ResetConnection> =>
  Effect.suspend((): Effect.Effect<FaultKind | undefined, ApiError | ResetConnection> => {
    const kind = state.faults.decide()
    if (kind === undefined) return Effect.succeed(undefined)
    state.stats.fault(kind)
    const f = state.faults.faults
    switch (kind) {
      case "error500":
        return fail(500, internalErrorMessage)
      case "error503":
        return Effect.fail(busy())
      case "reset":
        return Effect.fail(new ResetConnection())
      case "stall":
        return Effect.as(Effect.sleep(f.stallMs), undefined)
      case "spike":
        return Effect.as(Effect.sleep(f.spikeMs), undefined)
      default:
        return Effect.succeed(kind)
    }
  })

/** Runs the scheduler's acquire, turning a full queue into the 503 ApiError. */
export const lease = (
  state: State,
  model: ModelConfig,
  keepAlive: number
): Effect.Effect<number, ApiError, Scope.Scope> =>
  Effect.catchTag(state.scheduler.acquire(model, keepAlive), "ServerBusy", () => Effect.fail(busy()))

/** Loads the model without a slot (empty-prompt requests), turning a full queue into 503. */
export const warm = (state: State, model: ModelConfig, keepAlive: number): Effect.Effect<number, ApiError> =>
  Effect.catchTag(state.scheduler.warm(model, keepAlive), "ServerBusy", () => Effect.fail(busy()))
