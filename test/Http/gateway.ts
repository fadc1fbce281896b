/**
 * Test fixture: the simulator, an OllamaClient pointed at it, and the gateway on a random loopback port.
 * Built without test services, because real servers need the real clock.
 */
import { HttpServer } from "@effect/platform"
import { Context, Effect, Layer, Schedule } from "effect"
import * as Agent from "../../src/Agent/Agent.js"
import { AgentRuns } from "../../src/Http/AgentRuns.js"
import * as BackendChoice from "../../src/Lifecycle/BackendChoice.js"
import { BackendInfo } from "../../src/Lifecycle/BackendChoice.js"
import * as Engine from "../../src/Llm/Engine.js"
import * as Server from "../../src/Http/Server.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import type { SimulatorConfig } from "../../src/Simulator/SimulatorConfig.js"
import * as Store from "../../src/Store/Store.js"

/** The gateway's base URL. */
export class GatewayUrl extends Context.Tag("test/GatewayUrl")<GatewayUrl, string>() {}

const backend = (settings: BackendChoice.EngineSettings) =>
  Layer.unwrapEffect(
    Effect.map(Simulator, (sim) =>
      Layer.merge(
        Engine.layer({ ...settings, backends: [{ ...settings.backend, url: sim.url }] }),
        Layer.succeed(BackendInfo, { kind: "simulator", urls: [sim.url], requested: ["test"] })
      )
    )
  )

/** The gateway's URL, from the HttpServer it serves on. */
export const url = Layer.effect(
  GatewayUrl,
  Effect.map(HttpServer.HttpServer, (server) => {
    const address = server.address
    if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
    return `http://127.0.0.1:${address.port}`
  })
)

/** Simulator + gateway; provides the Simulator (for its stats) and the gateway's URL. */
export const layer = (config: SimulatorConfig, settings: BackendChoice.EngineSettings = {}) =>
  url.pipe(
    Layer.provideMerge(Server.layer({ port: 0, host: "127.0.0.1" })),
    Layer.provide(backend(settings)),
    Layer.provideMerge(Simulator.layerTest(config))
  )

/** Simulator + gateway with the agent runtime (AgentRuns over the engine and an in-memory database). */
export const layerWithAgents = (config: SimulatorConfig, settings: BackendChoice.EngineSettings = {}) =>
  url.pipe(
    Layer.provideMerge(Server.layer({ port: 0, host: "127.0.0.1" })),
    Layer.provideMerge(AgentRuns.Default),
    Layer.provideMerge(Agent.layer({ memory: { model: "nomic-embed-text" } })),
    Layer.provideMerge(Store.layerMemory),
    Layer.provideMerge(backend(settings)),
    Layer.provideMerge(Simulator.layerTest(config))
  )

/** A gateway answer: status, the JSON body when it parses, and the raw text. */
export interface Answer {
  readonly status: number
  readonly body: any
  readonly text: string
  readonly headers: Headers
}

/** Calls the gateway (JSON body in, whole answer out). */
export const call = (path: string, init: { method?: string; body?: unknown } = {}) =>
  Effect.flatMap(GatewayUrl, (base) =>
    Effect.promise(async (): Promise<Answer> => {
      const response = await fetch(`${base}${path}`, {
        method: init.method ?? "GET",
        ...(init.body === undefined
          ? {}
          : { body: JSON.stringify(init.body), headers: { "content-type": "application/json" } })
      })
      const text = await response.text()
      let body: unknown = undefined
      try {
        body = JSON.parse(text)
      } catch {
        body = undefined
      }
      return { status: response.status, body, text, headers: response.headers }
    })
  )

/**
 * POSTs `body` to `path`, reads the first chunk of the streamed answer and disconnects; then waits until the
 * simulator saw a disconnect and holds no call in flight. Returns the disconnects before and after.
 */
export const disconnectMidStream = (path: string, body: unknown) =>
  Effect.gen(function* () {
    const url = yield* GatewayUrl
    const sim = yield* Simulator
    const before = (yield* sim.stats).disconnects
    yield* Effect.promise(async () => {
      const abort = new AbortController()
      const response = await fetch(`${url}${path}`, {
        method: "POST",
        body: JSON.stringify(body),
        signal: abort.signal
      })
      await response.body!.getReader().read()
      abort.abort()
    })
    const stats = yield* sim.stats.pipe(
      Effect.filterOrFail((s) => s.disconnects > before && Object.values(s.inFlight).every((n) => n === 0)),
      Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds")))
    )
    return { before, after: stats.disconnects }
  })
