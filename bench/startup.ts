/**
 * Start-up bench: how long `sluice --help` takes and how long `sluice serve` takes until it answers HTTP,
 * for the esbuild bundle (what `bin/sluice.mjs` runs) against the TypeScript sources under tsx, in one run.
 * Targets (reported, not asserted): --help under 0.5 s, serve ready under 1 s. Its floor is `node -e 0`.
 *
 *   npm run bench -- startup         (5 runs each; SLUICE_BENCH_RUNS=N to change; also npm run bench:startup)
 */
import { spawn, spawnSync } from "node:child_process"
import { performance } from "node:perf_hooks"
import * as Report from "./support/Report.js"

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

/** Serve processes that did not exit within `graceMs` of SIGTERM (killed with SIGKILL, reported). */
let hungOnShutdown = 0
const graceMs = 3_000

/** Starts `serve` on a free port and resolves when /health answers; returns ms from spawn. */
const timeServe = (entry: Array<string>) =>
  new Promise<number>((resolve, reject) => {
    const start = performance.now()
    const child = spawn(process.execPath, [...entry, "serve", "--port", "0", "--backend", "simulator"], {
      stdio: ["ignore", "pipe", "ignore"]
    })
    let out = ""
    const onData = (data: Buffer) => {
      out += data.toString()
      const match = /Listening on (http:\/\/[^\s"'}\\]+)/.exec(out.replace(/\x1b\[[0-9;]*m/g, ""))
      if (!match) return
      child.stdout.off("data", onData)
      child.stdout.resume()
      fetch(`${match[1]!}/health`).then(
        (response) => {
          const elapsed = performance.now() - start
          void response.body?.cancel()
          const timer = setTimeout(() => {
            hungOnShutdown++
            child.kill("SIGKILL")
          }, graceMs)
          child.once("exit", () => {
            clearTimeout(timer)
            resolve(elapsed)
          })
          child.kill("SIGTERM")
        },
        (e) => {
          child.kill("SIGKILL")
          reject(e)
        }
      )
    }
    child.stdout.on("data", onData)
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
Report.write({
  scenario: "startup",
  title: "time to `--help` and to a serving gateway",
  setup: [
    `Median of ${runs} runs each; floor: \`node -e 0\` = ${ms(floor)}.`,
    "serve ready = from spawn until `GET /health` answers (`serve --port 0 --backend simulator`, so the in-process simulator starts too).",
    "Targets (reported, not asserted): --help under 500 ms, serve ready under 1,000 ms, for the bundle."
  ],
  tables: [
    {
      headers: ["entry", "--help", "× floor", "serve ready", "× floor"],
      rows: [
        [
          "bundle (bin/sluice.mjs)",
          ms(bundle.help),
          (bundle.help / floor).toFixed(1) + "×",
          ms(bundle.serve),
          (bundle.serve / floor).toFixed(1) + "×"
        ],
        [
          "sources under tsx",
          ms(tsx.help),
          (tsx.help / floor).toFixed(1) + "×",
          ms(tsx.serve),
          (tsx.serve / floor).toFixed(1) + "×"
        ],
        [
          "ratio tsx / bundle",
          `${(tsx.help / bundle.help).toFixed(1)}×`,
          "",
          `${(tsx.serve / bundle.serve).toFixed(1)}×`,
          ""
        ]
      ]
    }
  ],
  notes: [
    ...(hungOnShutdown === 0
      ? []
      : [
          `${hungOnShutdown} of ${2 * runs} serve processes did not exit within ${graceMs / 1000} s of SIGTERM (after one GET /health) and were killed with SIGKILL.`
        ]),
    `targets: --help < 500 ms: ${bundle.help < 500 ? "met" : "MISSED"}; serve < 1000 ms: ${bundle.serve < 1000 ? "met" : "MISSED"}`
  ],
  data: { runs, floorMs: floor, bundle, tsx, hungOnShutdown }
})
