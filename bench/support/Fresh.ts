/**
 * Refuses a built bundle older than the sources it is built from, with the command that rebuilds it: a bench that
 * runs `sluice serve` (bin/sluice.mjs loads dist/sluice.mjs) or imports the library (Shipped.ts) must not measure
 * yesterday's code. `npm run bench` builds first (bench/run.ts); a scenario run directly relies on this check.
 */
import { readdirSync, statSync } from "node:fs"

const root = new URL("../../", import.meta.url)

const newestSource = (dir: URL): number =>
  readdirSync(dir, { withFileTypes: true }).reduce((newest, entry) => {
    const url = new URL(entry.isDirectory() ? `${entry.name}/` : entry.name, dir)
    return Math.max(newest, entry.isDirectory() ? newestSource(url) : statSync(url).mtimeMs)
  }, 0)

/** The URL of `bundle` (relative to the project, e.g. "dist/index.mjs"), once it is known to be newer than src/. */
export const freshBundle = (bundle: string): URL => {
  const url = new URL(bundle, root)
  const builtAt = (() => {
    try {
      return statSync(url).mtimeMs
    } catch {
      throw new Error(`bench: ${bundle} is missing; run \`npm run build\` first`)
    }
  })()
  if (builtAt < newestSource(new URL("src/", root))) {
    throw new Error(`bench: ${bundle} is older than src/; run \`npm run build\` first`)
  }
  return url
}
