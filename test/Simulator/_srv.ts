import { NodeRuntime } from "@effect/platform-node"
import { serve } from "../../src/Simulator/Simulator.js"
import { defaultConfig, mapModels } from "../../src/Simulator/SimulatorConfig.js"
const wide = mapModels(defaultConfig, (m) => ({ ...m, numParallel: 256, loadMs: 0 }))
serve({ port: 18435, host: "127.0.0.1", config: wide }).pipe(NodeRuntime.runMain)
