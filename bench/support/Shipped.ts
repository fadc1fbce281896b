/**
 * The library as it ships: the built bundle `dist/index.mjs` (`npm run build`), which an app depending on Sluice
 * imports, typed as the sources it is built from.
 *
 * Choices:
 * - A bench that measures the engine's own cost imports it from here, not from src/: run under tsx, src/ is
 *   compiled with esbuild's keepNames, which wraps every function made at run time in a `__name` call (an
 *   `Object.defineProperty` per closure). That cost ~15 % more CPU per engine call than the bundle on this machine
 *   (139-153 vs 170-185 µs in three runs each, 2026-12-06), a cost no user pays.
 * - A bundle older than any file of src/ is refused (Fresh.ts), rather than measured.
 */
import { freshBundle } from "./Fresh.js"

/** Sluice's public API from the built bundle. */
export const Sluice: typeof import("../../src/index.js") = await import(freshBundle("dist/index.mjs").href)
