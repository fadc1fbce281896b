/**
 * The Ollama simulator as a service: an Ollama-compatible HTTP server (see ARCHITECTURE.md §9) with
 * deterministic output, a latency model, Ollama's scheduler and fault injection, for tests, benchmarks,
 * `sluice serve` without Ollama, and `sluice simulate`.
 *
 * It runs on @effect/platform's HttpRouter over `NodeHttpServer.make` with our own `http.Server`, so that on
 * shutdown every connection is closed first (a stalled or streaming request must not hold the layer open).
 * Request tracing spans are disabled: the simulator must not pay for spans nobody reads.
 *
 * Cost, measured on the 2-core dev machine with the client in another process: ~0.7-0.9 ms of server CPU
 * per non-streamed request (about 1,750 req/s at zero latency, 32 callers), plus ~25 µs per streamed chunk
 * (a 37-chunk stream costs ~1.9 ms). Stream chunks are written by a timer-driven Readable (TokenStream.ts).
 */
import { HttpMiddleware } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Console, Context, Data, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { createServer } from "node:http"
import { snapshot } from "./ControlRoutes.js"
import * as State from "./State.js"
import type { Faults } from "./Faults.js"
import * as Routes from "./Routes.js"
import type { SimulatorConfig } from "./SimulatorConfig.js"
import { testConfig } from "./SimulatorConfig.js"
import type { SimulatorStats } from "./Stats.js"

export type { SimulatorStats } from "./Stats.js"

/** The simulator could not listen (e.g. the port is taken). */
export class SimulatorStartError extends Data.TaggedError("SimulatorStartError")<{
  readonly host: string
  readonly port: number
  readonly cause: unknown
}> {
  override get message() {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `the Ollama simulator cannot listen on ${this.host}:${this.port}: ${reason}`
  }
}

export interface Options {
  /** 0 picks a free port. */
  readonly port: number
  readonly host: string
  readonly config: SimulatorConfig
}

export interface Service {
  /** Base URL, e.g. "http://127.0.0.1:53211" (a wildcard bind is reported as 127.0.0.1). */
  readonly url: string
  readonly stats: Effect.Effect<SimulatorStats>
  readonly faults: Effect.Effect<Faults>
  /** Merges fault settings (rates, stallMs, spikeMs, seed); takes effect for the next request. */
  readonly setFaults: (faults: Partial<Faults>) => Effect.Effect<void>
  readonly resetStats: Effect.Effect<void>
}

const urlOf = (host: string, port: number): string => {
  const shown = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host
  return `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}`
}

/** Starts the simulator in the current Scope; it stops when the Scope closes. */
export const make = (options: Options): Effect.Effect<Service, SimulatorStartError, Scope.Scope> =>
  Effect.gen(function* () {
    const state = yield* State.make(options.config)
    const node = createServer()
    const server = yield* NodeHttpServer.make(() => node, { port: options.port, host: options.host }).pipe(
      Effect.mapError((e) => new SimulatorStartError({ host: options.host, port: options.port, cause: e.cause }))
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => node.closeAllConnections()))
    const app = yield* Routes.make(state)
    yield* server.serve(app).pipe(HttpMiddleware.withTracerDisabledWhenEffect(() => true))
    const port = server.address._tag === "TcpAddress" ? server.address.port : options.port
    return {
      url: urlOf(options.host, port),
      stats: snapshot(state),
      faults: Effect.sync(() => state.faults.faults),
      setFaults: (faults) => Effect.sync(() => state.faults.set(faults)),
      resetStats: Effect.sync(() => state.stats.reset())
    }
  })

/** A real simulator server; fails with `SimulatorStartError` if it cannot listen. */
export const layer = (options: Options): Layer.Layer<Simulator, SimulatorStartError> =>
  Layer.scoped(Simulator, make(options))

/** For tests: 127.0.0.1 on a random port, `testConfig` (near-zero latency) unless a config is given. */
export const layerTest = (config: SimulatorConfig = testConfig): Layer.Layer<Simulator> =>
  Layer.orDie(layer({ port: 0, host: "127.0.0.1", config }))

/** Runs the simulator until interrupted, printing its URL first (for a CLI). */
export const serve = (options: Options): Effect.Effect<never, SimulatorStartError> =>
  Effect.scoped(
    Effect.flatMap(make(options), (sim) =>
      Effect.zipRight(Console.log(`Ollama simulator listening on ${sim.url}`), Effect.never)
    )
  )

/** The running simulator. */
export class Simulator extends Context.Tag("sluice/Simulator")<Simulator, Service>() {
  static layer(options: Options): Layer.Layer<Simulator, SimulatorStartError> {
    return layer(options)
  }
  static layerTest(config?: SimulatorConfig): Layer.Layer<Simulator> {
    return layerTest(config)
  }
}
