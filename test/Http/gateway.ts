/**
 * Test fixture: the simulator, an OllamaClient pointed at it, and the gateway on a random loopback port.
 * Built without test services, because real servers need the real clock.
 */
import { HttpServer } from "@effect/platform"
import { Context, Effect, Layer } from "effect"
import { BackendInfo } from "../../src/Lifecycle/Backend.js"
import { OllamaClient } from "../../src/Ollama/OllamaClient.js"
import * as Server from "../../src/Http/Server.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import type { SimulatorConfig } from "../../src/Simulator/SimulatorConfig.js"

/** The gateway's base URL. */
export class GatewayUrl extends Context.Tag("test/GatewayUrl")<GatewayUrl, string>() {}

const backend = Layer.unwrapEffect(
  Effect.map(Simulator, (sim) =>
    Layer.merge(
      OllamaClient.layer({ host: sim.url }),
      Layer.succeed(BackendInfo, { kind: "simulator", url: sim.url, requested: "test" })
    )
  )
)

const url = Layer.effect(
  GatewayUrl,
  Effect.map(HttpServer.HttpServer, (server) => {
    const address = server.address
    if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
    return `http://127.0.0.1:${address.port}`
  })
)

/** Simulator + gateway; provides the Simulator (for its stats) and the gateway's URL. */
export const layer = (config: SimulatorConfig) =>
  url.pipe(
    Layer.provideMerge(Server.layer({ port: 0, host: "127.0.0.1" })),
    Layer.provide(backend),
    Layer.provideMerge(Simulator.layerTest(config))
  )
