/**
 * The dependency rule of src/, as data: which folder may import which. docs/architecture.md states the same rule
 * in words and as a table; `Imports.test.ts` checks the sources against this data and the doc's table against it.
 *
 * Choices:
 * - Layers, lowest first: a folder may import the folders of every lower layer and nothing of its own layer or
 *   above. That makes the rule acyclic by construction and short to read; `only` narrows a folder further.
 * - The Simulator stands beside the stack: it imports only Domain (it must stay a faithful, separate Ollama). It
 *   sits just below Lifecycle so that only what chooses a backend (Lifecycle) and above may import it: the client
 *   and the engine never know the simulator exists.
 * - Files at the root of src/ are placed by name: `Config.ts` is the Config layer, `index.ts` (the library entry)
 *   and `main.ts` (the CLI entry) are `main`. A folder or root file not named here is a violation, so a new one
 *   gets a place on purpose.
 * - Folders are the top-level ones: `Llm/Scheduler` is part of `Llm`, `Store/migrations` part of `Store`.
 */

export const layers: ReadonlyArray<ReadonlyArray<string>> = [
  ["Domain"],
  ["Config"],
  ["Observability"],
  ["Shared"],
  ["Ollama"],
  ["Llm"],
  ["Store"],
  ["Agent"],
  ["Simulator"],
  ["Lifecycle"],
  ["Http"],
  ["Cli"],
  ["main"]
]

/** Folders that may import fewer than their layer allows. */
export const only: Readonly<Record<string, ReadonlyArray<string>>> = {
  Simulator: ["Domain"]
}

/** The folder of each file at the root of src/. */
export const rootFiles: Readonly<Record<string, string>> = {
  "Config.ts": "Config",
  "index.ts": "main",
  "main.ts": "main"
}

/** Files outside src/ that src/ may import (relative to the repository root). */
export const outside: ReadonlyArray<string> = ["package.json"]

export interface Rule {
  readonly layers: ReadonlyArray<ReadonlyArray<string>>
  readonly only: Readonly<Record<string, ReadonlyArray<string>>>
  readonly rootFiles: Readonly<Record<string, string>>
  readonly outside: ReadonlyArray<string>
}

export const rule: Rule = { layers, only, rootFiles, outside }

/** The folders `folder` may import under `r`, lowest layer first; undefined for a folder the rule does not place. */
export const allowedFrom = (r: Rule, folder: string): ReadonlyArray<string> | undefined => {
  const layer = r.layers.findIndex((l) => l.includes(folder))
  if (layer === -1) return undefined
  const below = r.layers.slice(0, layer).flat()
  const narrowed = r.only[folder]
  return narrowed === undefined ? below : below.filter((f) => narrowed.includes(f))
}
