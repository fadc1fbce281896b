/**
 * The library as it ships: the built bundle `dist/index.mjs` (`npm run build`), which an app depending on Sluice
 * imports, typed as the sources it is built from.
 *
 * Choices:
 * - A bench that measures the engine's own cost imports it from here, not from src/: run under tsx, src/ is
 *   compiled with esbuild's keepNames, which wraps every function made at run time in a `__name` call (an
 *   `Object.defineProperty` per closure). That cost ~15 % more CPU per engine call than the bundle on this machine
 *   (146 vs 175 µs, 2026-12-06), a cost no user pays.
 * - A bundle older than any file of src/ is refused with the command that rebuilds it, rather than measured.
 */
import { readdirSync, statSync } from "node:fs"

const root = new URL("../../", import.meta.url)
const bundle = new URL("dist/index.mjs", root)

const newestSource = (dir: URL): number =>
  readdirSync(dir, { withFileTypes: true }).reduce((newest, entry) => {
    const url = new URL(entry.isDirectory() ? `${entry.name}/` : entry.name, dir)
    return Math.max(newest, entry.isDirectory() ? newestSource(url) : statSync(url).mtimeMs)
  }, 0)

const builtAt = (() => {
  try {
    return statSync(bundle).mtimeMs
  } catch {
    throw new Error("bench: dist/index.mjs is missing; run `npm run build` first")
  }
})()
if (builtAt < newestSource(new URL("src/", root))) {
  throw new Error("bench: dist/index.mjs is older than src/; run `npm run build` first")
}

/** Sluice's public API from the built bundle. */
export const Sluice: typeof import("../../src/index.js") = await import(bundle.href)
