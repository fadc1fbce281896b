/**
 * Start-up bench: how long `sluice --help` takes and how long `sluice serve` takes until it answers HTTP,
 * for the esbuild bundle (what `bin/sluice.mjs` runs) against the TypeScript sources under tsx, in one run.
 * Targets (reported, not asserted): --help under 0.5 s, serve ready under 1 s. Its floor is `node -e 0`.
 *
 *   npm run bench:startup            (5 runs each; SLUICE_BENCH_RUNS=N to change)
 */
import { spawn, spawnSync } from "node:child_process"
import { performance } from "node:perf_hooks"

const runs = Number(process.env.SLUICE_BENCH_RUNS ?? 5)
const bundled = ["bin/sluice.mjs"]
const sources = ["--import", "tsx", "src/main.ts"]

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

const timeCommand = (args: Array<string>): number => {
  const start = performance.now()
  const result = spawnSync(process.execPath, args, { stdio: "ignore" })
  if (result.status !== 0) throw new Error(`node ${args.join(" ")} exited with ${result.status}`)
  return performance.now() - start
}

/** Starts `serve` on a free port and resolves when /health answers; returns ms from spawn. */
const timeServe = (entry: Array<string>) =>
  new Promise<number>((resolve, reject) => {
    const start = performance.now()
    const child = spawn(process.execPath, [...entry, "serve", "--port", "0", "--backend", "simulator"], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.on("data", (data: Buffer) => {
      out += data.toString()
      const match = /Listening on (http:\/\/[^\s]+)/.exec(out)
      if (!match) return
      const url = match[1]!.replace(/\x1b\[[0-9;]*m/g, "")
      fetch(`${url}/health`).then(
        () => {
          const elapsed = performance.now() - start
          child.kill("SIGTERM")
          child.on("exit", () => resolve(elapsed))
        },
        (e) => reject(e)
      )
      child.stdout.removeAllListeners("data")
    })
    child.on("error", reject)
  })

const measure = async (entry: Array<string>) => {
  const help: Array<number> = []
  const serve: Array<number> = []
  for (let i = 0; i < runs; i++) help.push(timeCommand([...entry, "--help"]))
  for (let i = 0; i < runs; i++) serve.push(await timeServe(entry))
  return { help: median(help), serve: median(serve) }
}

const floor = median(Array.from({ length: runs }, () => timeCommand(["-e", "0"])))
const bundle = await measure(bundled)
const tsx = await measure(sources)
const ms = (x: number) => `${x.toFixed(0)} ms`
console.log(`start-up, median of ${runs} runs (floor: node -e 0 = ${ms(floor)})`)
console.log(`| entry | --help | serve ready |`)
console.log(`| --- | --- | --- |`)
console.log(`| bundle (bin/sluice.mjs) | ${ms(bundle.help)} | ${ms(bundle.serve)} |`)
console.log(`| sources under tsx | ${ms(tsx.help)} | ${ms(tsx.serve)} |`)
console.log(
  `| ratio tsx / bundle | ${(tsx.help / bundle.help).toFixed(1)}x | ${(tsx.serve / bundle.serve).toFixed(1)}x |`
)
console.log(
  `targets: --help < 500 ms: ${bundle.help < 500 ? "met" : "MISSED"}; serve < 1000 ms: ${bundle.serve < 1000 ? "met" : "MISSED"}`
)
