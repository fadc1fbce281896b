/**
 * Test fixture: the engine (`Llm`, `Catalog`, `Backends`, `ResponseCache`) over one simulator or more, on real
 * time (the simulator is a real server). Retries use a tiny base delay so fault tests run fast.
 */
import { Effect, Layer } from "effect"
import type { BackendConfig } from "../../src/Llm/Backends.js"
import * as Engine from "../../src/Llm/Engine.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import type { SimulatorConfig } from "../../src/Simulator/SimulatorConfig.js"

export type Settings = Omit<Engine.Options, "backends"> & { readonly backend?: Omit<BackendConfig, "url"> }

export const quickRetry = { base: "1 millis", maxDelay: "20 millis", jitter: false } as const

/** The engine over the simulator of `config`; the Simulator is provided too, for its stats and faults. */
export const overSimulator = (config: SimulatorConfig, settings: Settings = {}) =>
  Layer.unwrapEffect(
    Effect.map(Simulator, (sim) => Engine.layer({ ...settings, backends: [{ ...settings.backend, url: sim.url }] }))
  ).pipe(Layer.provideMerge(Simulator.layerTest(config)))

/** A chat request with a distinct prompt (identical concurrent requests would be coalesced). */
export const chatRequest = (text: string, model = "llama3.2") => ({
  model,
  messages: [{ role: "user", content: text }]
})
