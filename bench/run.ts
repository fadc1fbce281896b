/**
 * Runs the bench suite: every scenario in its own Node process (a crash or a leak in one cannot skew the next),
 * one after the other. A failed scenario is reported and the others still run; the exit code is non-zero if any
 * failed. Results land in bench/results/<scenario>.{md,json} (and tiers.svg); SUMMARY.md lists the runs.
 * Flags after the scenario names are passed on to every scenario started (each reads the ones it knows).
 * The bundles are built first (`scripts/build.mjs --no-types`, ~1.5 s): the scenarios that run `sluice serve` or
 * import the library (support/Shipped.ts) measure what ships, and never a bundle older than src/.
 *
 *   npm run bench                      all scenarios but the soak (it runs only when named: an hour by default)
 *   npm run bench -- tiers overload    only these
 *   npm run bench -- soak --minutes 5  the soak, shorter
 */
import { execFileSync, spawn } from "node:child_process"
import { performance } from "node:perf_hooks"
import { describe, load, machine } from "./support/Machine.js"
import { soakMinutes } from "./support/Options.js"
import { writeFile } from "./support/Report.js"

interface Scenario {
  readonly name: string
  readonly file: string
  readonly nodeFlags: ReadonlyArray<string>
  /** Killed after this long (a hung scenario must not hang the suite). */
  readonly timeoutS: number
  /** Runs only when named, never in the default "all". */
  readonly onlyWhenNamed?: boolean
}

const args = process.argv.slice(2)
const firstFlag = args.findIndex((a) => a.startsWith("--"))
const wanted = firstFlag === -1 ? args : args.slice(0, firstFlag)
const flags = firstFlag === -1 ? [] : args.slice(firstFlag)

const scenarios: ReadonlyArray<Scenario> = [
  { name: "tiers", file: "bench/tiers.ts", nodeFlags: [], timeoutS: 240 },
  { name: "embeddings", file: "bench/embeddings.ts", nodeFlags: [], timeoutS: 240 },
  { name: "overhead", file: "bench/overhead.ts", nodeFlags: [], timeoutS: 240 },
  { name: "overload", file: "bench/overload.ts", nodeFlags: [], timeoutS: 180 },
  { name: "breaker", file: "bench/breaker.ts", nodeFlags: [], timeoutS: 180 },
  { name: "memory", file: "bench/memory.ts", nodeFlags: ["--expose-gc"], timeoutS: 600 },
  { name: "gateway", file: "bench/gateway.ts", nodeFlags: [], timeoutS: 120 },
  { name: "memory-search", file: "bench/memory-search.ts", nodeFlags: [], timeoutS: 400 },
  { name: "startup", file: "bench/startup.ts", nodeFlags: [], timeoutS: 180 },
  { name: "scale-out", file: "bench/scale-out.ts", nodeFlags: [], timeoutS: 300 },
  { name: "soak", file: "bench/soak.ts", nodeFlags: [], timeoutS: soakMinutes(flags) * 60 + 300, onlyWhenNamed: true }
]

const unknown = wanted.filter((w) => !scenarios.some((s) => s.name === w))
if (unknown.length > 0) {
  console.error(`unknown scenario(s): ${unknown.join(", ")}; known: ${scenarios.map((s) => s.name).join(", ")}`)
  process.exit(2)
}
const selected =
  wanted.length === 0
    ? scenarios.filter((s) => s.onlyWhenNamed !== true)
    : scenarios.filter((s) => wanted.includes(s.name))

const run = (scenario: Scenario) =>
  new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    const child = spawn(process.execPath, [...scenario.nodeFlags, "--import", "tsx", scenario.file, ...flags], {
      stdio: "inherit"
    })
    const timer = setTimeout(() => child.kill("SIGTERM"), scenario.timeoutS * 1000)
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
    child.once("error", (e) => {
      console.error(e)
      resolve({ code: -1, signal: null })
    })
  })

execFileSync(process.execPath, ["scripts/build.mjs", "--no-types"], { stdio: ["ignore", "ignore", "inherit"] })
console.log(`# Sluice bench\n\nMachine: ${describe(machine())}; load average ${load()} at the start.\n`)
const outcomes: Array<{ name: string; ok: boolean; seconds: number; detail: string }> = []
const start = performance.now()
for (const scenario of selected) {
  console.log(`\n<!-- ${scenario.name} -->\n`)
  const t0 = performance.now()
  const { code, signal } = await run(scenario)
  const seconds = (performance.now() - t0) / 1000
  const ok = code === 0
  const detail = ok
    ? "ok"
    : signal !== null
      ? `killed by ${signal} (timeout ${scenario.timeoutS} s?)`
      : `exit code ${code}`
  if (!ok) console.error(`\n[bench] scenario ${scenario.name} FAILED: ${detail}; continuing with the others`)
  outcomes.push({ name: scenario.name, ok, seconds, detail })
}
const total = (performance.now() - start) / 1000
const summary = [
  "| scenario | result | seconds |",
  "| --- | --- | --- |",
  ...outcomes.map((o) => `| ${o.name} | ${o.detail} | ${o.seconds.toFixed(1)} |`),
  `| total | ${outcomes.filter((o) => o.ok).length}/${outcomes.length} ok | ${total.toFixed(1)} |`
].join("\n")
console.log(`\n## Suite\n\n${summary}\n\nload average ${load()} at the end.`)
writeFile(
  "SUMMARY.md",
  `# Sluice bench run ${new Date().toISOString()}\n\nMachine: ${describe(machine())}.\n\n${summary}\n`
)
process.exitCode = outcomes.every((o) => o.ok) ? 0 : 1
