/**
 * The simulator's in-memory model list: lookups by name (case-insensitive, ":latest" implied), and the
 * changes `/api/pull`, `/api/create`, `/api/copy` and `/api/delete` make. Also derives the stable facts
 * Ollama reports about a model: digest, size on disk and modification time.
 */
import type { ModelConfig } from "./SimulatorConfig.js"
import { normalizeName } from "./SimulatorConfig.js"
import { fnv1a } from "./Text.js"

export interface Entry {
  readonly config: ModelConfig
  readonly modifiedAt: string
}

const baseTime = Date.UTC(2025, 8, 1)

/** 64 hex characters derived from the name (no "sha256:" prefix, as `/api/tags` shows it). */
export const digestOf = (name: string): string => {
  let hex = ""
  for (let i = 0; hex.length < 64; i++) hex += fnv1a(`${i}:${name}`).toString(16).padStart(8, "0")
  return hex.slice(0, 64)
}

const bitsPerWeight: Record<string, number> = { Q4_K_M: 4.85, Q4_K_S: 4.6, Q4_0: 4.5, Q8_0: 8.5, F16: 16, BF16: 16 }

/** The parameter count written in `parameterSize` ("3.2B" -> 3.2e9). */
export const parameterCount = (model: ModelConfig): number => {
  const match = /^([\d.]+)\s*([KMBT]?)/i.exec(model.parameterSize)
  const scale: Record<string, number> = { K: 1e3, M: 1e6, B: 1e9, T: 1e12, "": 1 }
  return match === null ? 1e9 : Math.round(Number(match[1]) * (scale[match[2]!.toUpperCase()] ?? 1))
}

/** Size in bytes: parameter count × bits per weight / 8. */
export const sizeOf = (model: ModelConfig): number =>
  Math.round((parameterCount(model) * (bitsPerWeight[model.quantization.toUpperCase()] ?? 8)) / 8)

export class Registry {
  private readonly entries = new Map<string, Entry>()

  constructor(models: ReadonlyArray<ModelConfig>) {
    for (const config of models) {
      const at = new Date(baseTime + (fnv1a(config.name) % 86_400) * 1000).toISOString()
      this.entries.set(normalizeName(config.name), { config, modifiedAt: at })
    }
  }

  find(name: string): Entry | undefined {
    return this.entries.get(normalizeName(name))
  }

  list(): Array<Entry> {
    return Array.from(this.entries.values())
  }

  /** Adds (or replaces) a model under `name`, copying the settings of `like`. */
  add(name: string, like: ModelConfig): void {
    const config = { ...like, name: normalizeName(name) }
    this.entries.set(normalizeName(name), { config, modifiedAt: new Date().toISOString() })
  }

  remove(name: string): boolean {
    return this.entries.delete(normalizeName(name))
  }
}
