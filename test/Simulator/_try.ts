import { Effect } from "effect"
import { Agent, request } from "@effect/platform-node/Undici"
const agent = new Agent({ connections: 256 })
import { make } from "../../src/Simulator/Simulator.js"
import { defaultConfig, mapModels, testConfig } from "../../src/Simulator/SimulatorConfig.js"

const run = (label: string, url: string, n: number, conc: number, body: object) =>
  Effect.promise(async () => {
    let next = 0
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    const worker = async () => {
      while (next < n) {
        next++
        const r = await request(`${url}/api/chat`, { method: "POST", body: JSON.stringify(body), dispatcher: agent })
        await r.body.text()
      }
    }
    await Promise.all(Array.from({ length: conc }, worker))
    const s = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    console.log(`${label}: ${n} in ${s.toFixed(2)}s = ${(n / s).toFixed(0)} req/s, process cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)}s`)
  })

const msg = { model: "llama3.2", messages: [{ role: "user", content: "hello there" }] }
Effect.gen(function* () {
  const fast = yield* make({ port: 0, host: "127.0.0.1", config: testConfig })
  yield* run("warmup", fast.url, 500, 32, { ...msg, stream: false })
  yield* run("zero-latency non-stream", fast.url, 5000, 32, { ...msg, stream: false })
  yield* run("zero-latency stream", fast.url, 5000, 32, { ...msg, stream: true })
  const wide = mapModels(defaultConfig, (m) => ({ ...m, numParallel: 256, loadMs: 0 }))
  const real = yield* make({ port: 0, host: "127.0.0.1", config: wide })
  yield* run("15ms/token stream x200", real.url, 1000, 200, { ...msg, stream: true })
}).pipe(Effect.scoped, Effect.runPromise)
