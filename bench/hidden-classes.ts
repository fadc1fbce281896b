/**
 * Hidden classes made per gateway request: `sluice serve` (the built bundle) under V8's `--log-maps`, in front of
 * the simulator (no latency), warmed up, then N non-streamed `/api/chat` calls. Counts the map transitions V8 logs as
 * "prototype" in that window: properties added to an object whose hidden class sits outside V8's transition tree,
 * so every such object gets a fresh hidden class per property, allocated in old space. On Node 20 (V8 11) an object
 * literal that spreads another and then adds properties is one (`{ ...labels, durationMs }`). They were ~20 per
 * request (~2.4 KB of old space each request, and request closures kept alive through scavenges); the count should
 * stay at 0 per call. Deterministic, unlike CPU per call. Not one of `npm run bench`'s scenarios: run it by hand.
 *
 *   node --import tsx bench/hidden-classes.ts [--calls 1000] [--openai] [--stream]
 *   (--openai: /v1/chat/completions instead of /api/chat; --stream: streamed answers)
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { Agent, request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runPromises } from "./support/Load.js"
import { positiveNumber } from "./support/Options.js"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { model, simulator, sluiceServe } from "./support/Server.js"

const calls = Math.round(positiveNumber(process.argv.slice(2), "calls", 1000))
const path = process.argv.includes("--openai") ? "/v1/chat/completions" : "/api/chat"
const stream = process.argv.includes("--stream")
const dir = mkdtempSync(join(tmpdir(), "sluice-maps-"))
const log = join(dir, "v8.log")
const backend = await simulator({
  models: [model(defaultModels[0]!, { numParallel: 64, loadMs: 0, promptTokenMs: 0, outputTokenMs: 0, jitter: 0 })]
})
const spawned = performance.now()
const gateway = await sluiceServe(backend.url, process.env, [
  "--log-maps",
  "--no-log-maps-details",
  `--logfile=${log}`,
  "--no-logfile-per-isolate"
])
const agent = new Agent({ keepAlive: true, maxSockets: 16 })
const base = new URL(gateway.url)
let seq = 0
const call = () =>
  new Promise<void>((resolve, reject) => {
    const body = JSON.stringify({
      model: "llama3.2",
      messages: [{ role: "user", content: `maps ${seq++}` }],
      stream
    })
    const req = request({ agent, host: base.hostname, port: base.port, path, method: "POST" }, (res) => {
      res.resume()
      res.once("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))))
    })
    req.once("error", reject)
    req.setHeader("content-type", "application/json")
    req.end(body)
  })
const idle = () => new Promise((resolve) => setTimeout(resolve, 1000))

await runPromises(500, 8, call)
await idle()
// the window in V8's log time (µs since the child started; spawning is ~0.1 s off, the idle second either side covers it)
const from = (performance.now() - spawned - 500) * 1000
await runPromises(calls, 8, call)
const to = (performance.now() - spawned + 500) * 1000
await idle()
await gateway.stop()
await backend.stop()

const bundle = readFileSync("dist/sluice.mjs", "utf8").split("\n")
/** The module a bundle line belongs to (esbuild's `// path` comment above it). */
const moduleOf = (line: number): string => {
  for (let i = Math.min(line, bundle.length) - 1; i >= 0; i--) {
    const match = /^\/\/ ((?:src|node_modules)\/\S+)$/.exec(bundle[i]!)
    if (match !== null) return match[1]!
  }
  return "?"
}
const sites = new Map<string, number>()
let detached = 0
for (const entry of readFileSync(log, "utf8").split("\n")) {
  // map,Transition,<time>,<from>,<to>,<pc>,<line>,<column>,<reason>,<name>
  const fields = entry.split(",")
  if (fields[0] !== "map" || fields[1] !== "Transition" || fields[8] !== "prototype") continue
  const time = Number(fields[2])
  if (time < from || time > to) continue
  detached += 1
  const site = `${moduleOf(Number(fields[6]))} (dist/sluice.mjs:${fields[6]}) +${fields[9]}`
  sites.set(site, (sites.get(site) ?? 0) + 1)
}
rmSync(dir, { recursive: true, force: true })

console.log(
  `hidden classes made outside the transition tree: ${(detached / calls).toFixed(2)} per call (${calls} calls)`
)
for (const [site, count] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, 20))
  console.log(`  ${(count / calls).toFixed(2)} per call  ${site}`)
