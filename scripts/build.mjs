// Bundles the CLI into one ESM file (dist/sluice.mjs) so `sluice` starts fast: one file to parse instead of
// hundreds of modules (measured in effect-3.md §6: 1.3 s unbundled vs 0.35 s bundled). Runs as `prepare`,
// so `npm ci` leaves a runnable `sluice` with no separate build step. Tests run the TypeScript sources.
import { build } from "esbuild"

const started = Date.now()
await build({
  entryPoints: ["src/main.ts"],
  outfile: "dist/sluice.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
  // better-sqlite3 is a native addon: it loads its .node file from node_modules at run time.
  external: ["better-sqlite3"],
  // CommonJS dependencies bundled into ESM call `require`; give them one.
  banner: {
    js: "import { createRequire as __sluiceRequire } from 'node:module'; const require = __sluiceRequire(import.meta.url);"
  }
})
// The library entry for Effect apps that embed Sluice's Layers: dependencies stay external, so the app and
// Sluice share one copy of effect (two copies would not share Context tags or fiber refs).
await build({
  entryPoints: ["src/index.ts"],
  outfile: "dist/index.mjs",
  bundle: true,
  packages: "external",
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning"
})
console.log(`sluice: built dist/sluice.mjs and dist/index.mjs in ${Date.now() - started} ms`)
