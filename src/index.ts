/**
 * Sluice's public library entry: the Layers and types an Effect application embeds.
 */
export * from "./Domain/Chat.js"
export * from "./Domain/Embed.js"
export * from "./Domain/Generate.js"
export * from "./Domain/LlmError.js"
export * from "./Domain/Models.js"
export { ErrorBody, Format, KeepAlive, Options, Think, serverBusyMessage } from "./Domain/Common.js"
export { OllamaClient } from "./Ollama/OllamaClient.js"
export * as Host from "./Ollama/Host.js"
export { Simulator } from "./Simulator/Simulator.js"
export * as SimulatorConfig from "./Simulator/SimulatorConfig.js"
export * as Gateway from "./Http/Server.js"
