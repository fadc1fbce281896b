#!/usr/bin/env node
// The `sluice` command: loads the bundle that `npm ci` / `npm install` builds (the `prepare` script).
import { existsSync } from "node:fs"

const bundle = new URL("../dist/sluice.mjs", import.meta.url)
if (!existsSync(bundle)) {
  console.error("sluice: dist/sluice.mjs is missing; run `npm ci` (or `npm run build`) in the sluice folder first.")
  process.exit(1)
}
await import(bundle.href)
