/**
 * Configuration of the Ollama simulator: the models it serves, their latency model, the scheduler limits
 * and the fault rates, plus the defaults (`defaultConfig`) and a near-zero-latency variant for tests (`fast`).
 *
 * Latency model (per request, multiplied by a deterministic jitter factor in [1 - jitter, 1 + jitter]):
 *
 *   L = loadMs (only when the model was not loaded)
 *     + requestMs                               (fixed per request, holding the slot; default 0)
 *     + promptTokens × promptTokenMs            (prompt evaluation, before the first byte)
 *     + outputTokens × outputTokenMs            (one NDJSON chunk per token when streaming)
 *
 * A model has `numParallel` slots, so with S slots and L seconds per request no client can beat S / L
 * requests per second on that model. With `defaultConfig` a warm llama3.2 chat of ~40 prompt and ~36 output
 * tokens takes about 0.54 s, so its 4 slots cap it near 7.4 req/s.
 */
import type { Faults } from "./Faults.js"
import { defaultFaults } from "./Faults.js"

/** What a model can do, as listed by `/api/show` and `/api/tags`. */
export type Capability = "completion" | "tools" | "thinking" | "embedding" | "vision" | "insert"

export interface ModelConfig {
  /** Full name with tag, e.g. "llama3.2:latest"; requests may omit ":latest" and differ in case. */
  readonly name: string
  readonly family: string
  readonly parameterSize: string
  readonly quantization: string
  readonly contextLength: number
  readonly embeddingLength?: number
  readonly capabilities: ReadonlyArray<Capability>
  /** Concurrent requests served at once (OLLAMA_NUM_PARALLEL). */
  readonly numParallel: number
  /** Time to load the model when a request finds it unloaded. */
  readonly loadMs: number
  /**
   * Fixed cost of every inference request (chat, generate, embed), paid while holding a slot, before prompt
   * evaluation: scheduling, tokenizer and kernel launch overhead. Absent means 0 (every default model). It is
   * what makes one `/api/embed` call with many inputs cheaper than many calls with one input each.
   */
  readonly requestMs?: number
  /** Prompt evaluation cost per prompt token. */
  readonly promptTokenMs: number
  /** Generation cost per output token. */
  readonly outputTokenMs: number
  /** Fraction in [0, 1]: each request's latency is scaled by a seeded factor in [1 - jitter, 1 + jitter]. */
  readonly jitter: number
}

export interface SimulatorConfig {
  readonly models: ReadonlyArray<ModelConfig>
  /** Capacity of the scheduling queue (OLLAMA_MAX_QUEUE); a full queue answers 503 server busy. */
  readonly maxQueue: number
  /** When true, requests waiting for a slot of a loaded model count against `maxQueue` too (not Ollama's rule). */
  readonly strictQueue: boolean
  readonly maxLoadedModels: number
  /** Go duration string or seconds; negative keeps models loaded forever. */
  readonly defaultKeepAlive: string | number
  readonly version: string
  /** Seed of the latency jitter. */
  readonly seed: number
  readonly faults: Faults
}

const latency = { loadMs: 300, promptTokenMs: 0.1, outputTokenMs: 15, jitter: 0.1 }

export const defaultModels: ReadonlyArray<ModelConfig> = [
  {
    name: "llama3.2:latest",
    family: "llama",
    parameterSize: "3.2B",
    quantization: "Q4_K_M",
    contextLength: 131072,
    embeddingLength: 3072,
    capabilities: ["completion", "tools"],
    numParallel: 4,
    ...latency
  },
  {
    name: "qwen3:latest",
    family: "qwen3",
    parameterSize: "8.2B",
    quantization: "Q4_K_M",
    contextLength: 40960,
    embeddingLength: 4096,
    capabilities: ["completion", "tools", "thinking"],
    numParallel: 2,
    ...latency,
    loadMs: 600,
    outputTokenMs: 25
  },
  {
    name: "nomic-embed-text:latest",
    family: "nomic-bert",
    parameterSize: "137M",
    quantization: "F16",
    contextLength: 2048,
    embeddingLength: 768,
    capabilities: ["embedding"],
    numParallel: 1,
    ...latency,
    loadMs: 150,
    promptTokenMs: 0.05
  },
  {
    name: "all-minilm:latest",
    family: "bert",
    parameterSize: "23M",
    quantization: "F16",
    contextLength: 512,
    embeddingLength: 384,
    capabilities: ["embedding"],
    numParallel: 1,
    ...latency,
    loadMs: 50,
    promptTokenMs: 0.02
  }
]

/** Realistic but fast: 300 ms loads, 0.1 ms per prompt token, 15 ms per output token, 512-deep queue. */
export const defaultConfig: SimulatorConfig = {
  models: defaultModels,
  maxQueue: 512,
  strictQueue: false,
  maxLoadedModels: 3,
  defaultKeepAlive: "5m",
  version: "0.12.6",
  seed: 42,
  faults: defaultFaults
}

/** Overrides accepted by `make` and `fast`: fault rates may be given partially. */
export type ConfigOverrides = Partial<Omit<SimulatorConfig, "faults">> & { readonly faults?: Partial<Faults> }

/** The default config with some fields replaced. */
export const make = (overrides: ConfigOverrides = {}, base: SimulatorConfig = defaultConfig): SimulatorConfig => ({
  ...base,
  ...overrides,
  faults: { ...base.faults, ...overrides.faults }
})

/** Every model with its latency set to (near) zero: the config for unit tests. */
export const testConfig: SimulatorConfig = make({
  models: defaultModels.map((m) => ({ ...m, loadMs: 0, promptTokenMs: 0, outputTokenMs: 0, jitter: 0 }))
})

/** `testConfig` with some fields replaced. */
export const fast = (overrides: ConfigOverrides = {}): SimulatorConfig => make(overrides, testConfig)

/** Applies `f` to every model (e.g. to give all of them a slow load in a test). */
export const mapModels = (config: SimulatorConfig, f: (model: ModelConfig) => ModelConfig): SimulatorConfig => ({
  ...config,
  models: config.models.map(f)
})

/** Canonical lookup key: lower case, with ":latest" when no tag is given (as Ollama compares names). */
export { normalizeName } from "../Domain/ModelName.js"

const unitMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000
}

/**
 * Parses a keep_alive value into milliseconds: a number is seconds, a string a Go duration ("5m", "1h30m",
 * "300ms", "-1m"). Negative values become `Infinity` (never unload). Returns `undefined` when invalid.
 */
export const parseKeepAlive = (value: string | number): number | undefined => {
  if (typeof value === "number") return Number.isFinite(value) ? (value < 0 ? Infinity : value * 1000) : undefined
  const match = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(value)
  if (value === "0") return 0
  if (match === null) return undefined
  let total = 0
  for (const part of value.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * (unitMs[part[2]!] ?? 0)
  }
  return match[1] === "-" ? (total === 0 ? 0 : Infinity) : total
}
