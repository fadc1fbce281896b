// Bundles the CLI into one ESM file (dist/sluice.mjs) so `sluice` starts fast: one file to parse instead of
// hundreds of modules (measured in effect-3.md §6: 1.3 s unbundled vs 0.35 s bundled). Runs as `prepare`,
// so `npm ci` leaves a runnable `sluice` with no separate build step. Tests run the TypeScript sources.
// Files are written to a temporary name and renamed, so a process starting meanwhile never reads half a bundle.
import { build } from "esbuild"
import { mkdirSync, renameSync, writeFileSync } from "node:fs"
import { basename } from "node:path"

const common = { bundle: true, platform: "node", format: "esm", target: "node20", sourcemap: "linked", write: false }

/** Writes esbuild's output files atomically (temp file + rename). */
const commit = (result) => {
  mkdirSync("dist", { recursive: true })
  for (const file of result.outputFiles) {
    const temp = `${file.path}.${process.pid}.tmp`
    writeFileSync(temp, file.contents)
    renameSync(temp, file.path)
  }
  return result.outputFiles.map((f) => basename(f.path)).filter((f) => !f.endsWith(".map"))
}

const started = Date.now()
const cli = await build({
  ...common,
  entryPoints: ["src/main.ts"],
  outfile: "dist/sluice.mjs",
  legalComments: "none",
  logLevel: "warning",
  // better-sqlite3 and usearch are native addons: they load their .node files from node_modules at run time.
  external: ["better-sqlite3", "usearch"],
  // CommonJS dependencies bundled into ESM call `require`; give them one.
  banner: {
    js: "import { createRequire as __sluiceRequire } from 'node:module'; const require = __sluiceRequire(import.meta.url);"
  }
})
// The library entry for Effect apps that embed Sluice's Layers: dependencies stay external, so the app and
// Sluice share one copy of effect (two copies would not share Context tags or fiber refs).
const library = await build({
  ...common,
  entryPoints: ["src/index.ts"],
  outfile: "dist/index.mjs",
  packages: "external",
  logLevel: "warning"
})
const written = [...commit(cli), ...commit(library)]
console.log(`sluice: built ${written.join(" and ")} in ${Date.now() - started} ms`)
