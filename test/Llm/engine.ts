/**
 * Test fixture: the engine (`Llm`, `Catalog`, `Backends`, `ResponseCache`) over one simulator or more, on real
 * time (the simulator is a real server). Retries use a tiny base delay so fault tests run fast.
 */
import { Duration, Effect, Layer } from "effect"
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

const realSleep = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

/**
 * The value of `check` once `holds` is true of it. Real servers are involved, so it polls on the process's timers
 * (every 10 ms), not on the Clock, which a test may have replaced with TestClock. `within` is a bound on
 * correctness, not on speed: a condition that never holds fails the test instead of hanging it.
 */
export const eventually = <A, E, R>(
  check: Effect.Effect<A, E, R>,
  holds: (value: A) => boolean,
  what: string,
  within: Duration.DurationInput = "30 seconds"
): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    const giveUpAt = performance.now() + Duration.toMillis(within)
    const poll: Effect.Effect<A, E, R> = Effect.flatMap(check, (value) => {
      if (holds(value)) return Effect.succeed(value)
      if (performance.now() > giveUpAt)
        return Effect.dieMessage(`never held within ${Duration.format(within)}: ${what}`)
      return Effect.zipRight(realSleep(10), poll)
    })
    return poll
  })
