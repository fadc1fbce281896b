/**
 * The simulator as its own process for the benchmarks, so the client under test never shares an event loop
 * with it. `sluice simulate` has no latency flags, hence this entry: it takes a `SimulatorConfig` override as
 * JSON (argv[2]), prints `Ollama simulator listening on <url>` and runs until SIGTERM/SIGINT.
 *
 *   node --import tsx bench/simulator-process.ts '{"strictQueue":true,"models":[...]}'
 */
import { NodeRuntime } from "@effect/platform-node"
import { serve } from "../src/Simulator/Simulator.js"
import * as SimulatorConfig from "../src/Simulator/SimulatorConfig.js"

const overrides = JSON.parse(process.argv[2] ?? "{}") as SimulatorConfig.ConfigOverrides
NodeRuntime.runMain(serve({ port: 0, host: "127.0.0.1", config: SimulatorConfig.make(overrides) }))
