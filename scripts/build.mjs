// Builds the package:
// - dist/sluice.mjs: the CLI bundled into one ESM file so `sluice` starts fast (one file to parse instead of hundreds
//   of modules: 1.3 s unbundled vs 0.35 s bundled, effect-3.md §6). Native addons stay external.
// - dist/index.mjs: the library entry, dependencies external so an app and Sluice share one copy of effect.
//   No source map: the file is unminified ESM whose stack traces read as they are (a map would triple the download).
// - dist/types: the library's declarations, by tsc from tsconfig.build.json (one .d.ts per module, so namespace
//   re-exports like `Engine` stay as they are; no declaration bundler to keep in step with Effect's types), in a
//   child process beside esbuild, incremental (its build info in dist/, so deleting dist rebuilds everything).
// `npm run build` makes all three. The declarations cost ~3x the bundles, and only a tarball needs them: `prepare`
// (run by `npm ci`, and by the tests' global setup) makes the bundles (`--no-types`), `prepack` (run by `npm pack`
// and `npm publish`, and for git dependencies) the declarations (`--types`). Tests run the TypeScript sources.
// Bundles are written to a temporary name and renamed, so a process starting meanwhile never reads half a bundle.
import { build } from "esbuild"
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { basename } from "node:path"

const common = { bundle: true, platform: "node", format: "esm", target: "node20", write: false }

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

/** tsc's declaration emit (tsconfig.build.json), resolved to the number of milliseconds it took. */
const declarations = () => {
  // Build info without its outputs would make tsc skip the emit: start over when the types are gone.
  if (!existsSync("dist/types/index.d.ts")) rmSync("dist/types.tsbuildinfo", { force: true })
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  const start = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: "inherit" })
    child.on("error", reject)
    child.on("exit", (code) =>
      code === 0 ? resolve(Date.now() - start) : reject(new Error(`tsc (declarations) exited with ${code}`))
    )
  })
}

const started = Date.now()
const types = process.argv.includes("--no-types") ? undefined : declarations()
if (process.argv.includes("--types")) {
  console.log(`sluice: built dist/types in ${await types} ms`)
  process.exit(0)
}
const cli = build({
  ...common,
  entryPoints: ["src/main.ts"],
  outfile: "dist/sluice.mjs",
  // For debugging the bundle in the repo (`node --enable-source-maps`); package.json's `files` leaves it out.
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
  // better-sqlite3 and usearch are native addons: they load their .node files from node_modules at run time.
  external: ["better-sqlite3", "usearch"],
  // CommonJS dependencies bundled into ESM call `require`; give them one.
  banner: {
    js: "import { createRequire as __sluiceRequire } from 'node:module'; const require = __sluiceRequire(import.meta.url);"
  }
})
const library = build({
  ...common,
  entryPoints: ["src/index.ts"],
  outfile: "dist/index.mjs",
  packages: "external",
  logLevel: "warning"
})
const written = [...commit(await cli), ...commit(await library)]
const bundled = Date.now() - started
const typesMs = await types
const declared = typesMs === undefined ? "" : `, dist/types in ${typesMs} ms (${Date.now() - started} ms)`
console.log(`sluice: built ${written.join(" and ")} in ${bundled} ms${declared}`)
