/**
 * Scale-out bench: what the shared Redis adds to a call, against the per-process limits and cache, in one run.
 * A redis-server (from the system's packages) on loopback, the simulator at zero latency (so the added cost is not
 * hidden under model time), one API key with rpm/tpm/concurrency limits set far above the load (every call is
 * checked, none refused), and three `sluice serve` processes over one SQLite file: `local` (no Redis), `redis-a`
 * and `redis-b` (both on the Redis). Each measurement with 1 caller (the added latency itself) and 8 (the cores
 * saturated):
 * - miss: distinct prompts. Local limits + local cache vs Redis limits + the shared cache's claim and store.
 * - local hit: one prompt repeated on one instance (answered by its in-process cache level on both kinds): the
 *   difference is the Redis limit alone.
 * - shared hit: prompts warmed on `redis-a`, then asked on `redis-b`: its own level misses, Redis answers.
 * And the floor: one Redis round trip (PING through ioredis) with the same 8 callers.
 * Ceiling: the simulator's zero-latency answer; the client, the simulator, Redis and Sluice share 2 cores, so the
 * figures are read next to each other, not as absolutes.
 *
 *   npm run bench -- scale-out [--calls 2000] [--callers 1,8]
 */
import { execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { Agent, request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Redis as IoRedis } from "ioredis"
import { defaultModels } from "../src/Simulator/SimulatorConfig.js"
import { failureText, runPromises } from "./support/Load.js"
import { positiveNumber, unknownFlags } from "./support/Options.js"
import * as Report from "./support/Report.js"
import { describeModel, model, simulator, sluiceServe } from "./support/Server.js"
import { fmt, summarize } from "./support/Stats.js"

const argv = process.argv.slice(2)
const unknown = unknownFlags(argv, ["calls", "callers"])
if (unknown.length > 0) throw new Error(`unknown flag(s): ${unknown.join(" ")}; known: --calls --callers`)
const calls = positiveNumber(argv, "calls", 2_000)
const callersFlag = argv.indexOf("--callers")
const callerCounts = (callersFlag === -1 ? "1,8" : argv[callersFlag + 1]!).split(",").map(Number)
const zero = defaultModels.map((m) =>
  model(m, { numParallel: 16, loadMs: 0, promptTokenMs: 0, outputTokenMs: 0, jitter: 0 })
)

const redisBinary = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
})()
if (redisBinary === undefined) {
  console.log("## scale-out: skipped: no redis-server binary (apt-get install redis-server)")
  process.exit(0)
}

const dir = mkdtempSync(join(tmpdir(), "sluice-bench-scale-"))
const redisPort = 20_000 + Math.floor(Math.random() * 20_000)
const redis = spawn(
  redisBinary,
  ["--port", String(redisPort), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
  { stdio: "ignore" }
)
process.once("exit", () => {
  redis.kill("SIGKILL")
  rmSync(dir, { recursive: true, force: true })
})
const redisUrl = `redis://127.0.0.1:${redisPort}`
const pinger = new IoRedis(redisUrl)
// redis-server may take a moment to listen: ioredis reconnects until it does; its errors meanwhile are expected
pinger.on("error", () => undefined)
await new Promise<void>((resolve) => pinger.once("ready", () => resolve()))

const sim = await simulator({ models: zero })
const dataDir = join(dir, "data")
const { NODE_ENV: _n, SLUICE_BACKEND: _b, OLLAMA_HOST: _o, ...inherited } = process.env
const base = { ...inherited, SLUICE_DATA_DIR: dataDir }
const key = execFileSync(
  process.execPath,
  [
    "bin/sluice.mjs",
    "keys",
    "create",
    "--name",
    "bench",
    "--rpm",
    "10000000",
    "--tpm",
    "1000000000",
    "--concurrency",
    "1000"
  ],
  { env: base, encoding: "utf8" }
)
const secret = /^(sk-sluice-\S+)$/m.exec(key)?.[1]
if (secret === undefined) throw new Error(`no key in: ${key}`)

const local = await sluiceServe(sim.url, base)
const redisA = await sluiceServe(sim.url, { ...base, SLUICE_REDIS_URL: redisUrl })
const redisB = await sluiceServe(sim.url, { ...base, SLUICE_REDIS_URL: redisUrl })

const agent = new Agent({ keepAlive: true, maxSockets: 64 })
const chat = (url: string, prompt: string) => {
  const target = new URL(url)
  const body = JSON.stringify({
    model: "llama3.2",
    messages: [{ role: "user", content: prompt }],
    stream: false,
    options: { num_predict: 8 }
  })
  return new Promise<void>((resolve, reject) => {
    const req = request(
      { agent, host: target.hostname, port: target.port, path: "/api/chat", method: "POST" },
      (res) => {
        res.resume()
        res.once("error", reject)
        res.once("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))))
      }
    )
    req.once("error", reject)
    req.setHeader("content-type", "application/json")
    req.setHeader("authorization", `Bearer ${secret}`)
    req.end(body)
  })
}

interface Path {
  readonly name: string
  readonly call: (i: number) => Promise<unknown>
  /** The Sluice process that serves this path (its CPU is read per call). */
  readonly server?: { readonly cpuMs: () => number }
}

/** CPU (user + system) of a process from /proc, ms (Linux; NaN elsewhere). */
const cpuOfPid = (pid: number) => (): number => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
  } catch {
    return NaN
  }
}
const redisCpu = cpuOfPid(redis.pid!)
let run = 0
const fresh = (tag: string) => {
  const r = run++
  return (i: number) => `${tag} ${r} ${i}`
}
const us = (x: number) => (Number.isNaN(x) ? "-" : `${x.toFixed(0)} µs`)
// warm-up: the JIT of a fresh process takes a few thousand calls to settle (the first path measured in a cold process
// cost twice the CPU per call of the same path later), so every path runs `warmup` calls first
const warmup = 1_500
const rounds = 5
const perRound = Math.ceil(calls / rounds)

/** Every path measured with `callers` closed-loop callers, the paths taking turns in rounds. */
const measureWith = async (callers: number) => {
  const missLocal = fresh("miss-local")
  const missRedis = fresh("miss-redis")
  const shared = fresh("shared")
  const paths: ReadonlyArray<Path> = [
    { name: "miss, local limits and cache", call: (i) => chat(local.url, missLocal(i)), server: local },
    { name: "miss, Redis limits and shared cache", call: (i) => chat(redisA.url, missRedis(i)), server: redisA },
    { name: "local hit, local limits", call: () => chat(local.url, "the same prompt"), server: local },
    { name: "local hit, Redis limits", call: () => chat(redisA.url, "the same prompt"), server: redisA },
    {
      name: "shared hit (another instance's answer), Redis limits",
      call: (i) => chat(redisB.url, shared(i)),
      server: redisB
    },
    { name: "Redis round trip (PING)", call: () => pinger.ping() }
  ]
  // shared hits: every prompt B will ask is answered on A first (not timed)
  await runPromises(calls + warmup, 8, (i) => chat(redisA.url, shared(i)))
  const outcomes = paths.map(() => ({
    latencies: [] as Array<number>,
    failures: new Map<string, number>(),
    elapsedMs: 0,
    sluiceCpuMs: 0,
    redisCpuMs: 0
  }))
  for (const path of paths) await runPromises(warmup, Math.max(callers, 8), (i) => path.call(calls + i))
  for (let round = 0; round < rounds; round++) {
    process.stderr.write(`[scale-out] ${callers} caller(s), round ${round + 1} of ${rounds}\n`)
    for (const [p, path] of paths.entries()) {
      const offset = round * perRound
      const cpu0 = path.server?.cpuMs() ?? 0
      const redis0 = redisCpu()
      const outcome = await runPromises(perRound, callers, (i) => path.call(offset + i))
      const into = outcomes[p]!
      into.sluiceCpuMs += (path.server?.cpuMs() ?? 0) - cpu0
      into.redisCpuMs += redisCpu() - redis0
      into.latencies.push(...outcome.latencies)
      into.elapsedMs += outcome.elapsedMs
      for (const [k, v] of outcome.failures) into.failures.set(k, (into.failures.get(k) ?? 0) + v)
    }
  }
  const summaries = paths.map((path, p) => ({
    name: path.name,
    s: summarize(outcomes[p]!.latencies, perRound * rounds, outcomes[p]!.elapsedMs),
    failures: outcomes[p]!.failures,
    sluiceUs: path.server === undefined ? NaN : (outcomes[p]!.sluiceCpuMs * 1000) / (perRound * rounds),
    redisUs: (outcomes[p]!.redisCpuMs * 1000) / (perRound * rounds)
  }))
  const byName = (prefix: string) => summaries.find((x) => x.name.startsWith(prefix))!.s
  const added = (a: string, b: string) => ({
    p50: byName(a).p50 - byName(b).p50,
    p99: byName(a).p99 - byName(b).p99
  })
  return {
    callers,
    summaries,
    limit: added("local hit, Redis", "local hit, local"),
    miss: added("miss, Redis", "miss, local"),
    sharedVsMiss: added("shared hit", "miss, local")
  }
}

const runs = []
for (const c of callerCounts) runs.push(await measureWith(c))

Report.write({
  scenario: "scale-out",
  title: "what the shared Redis adds per call (limits, cache) against the per-process ones",
  setup: [
    `Backend: the simulator at zero latency (${describeModel(zero[0]!)}): the ceiling is Sluice's own cost per call.`,
    `Three sluice serve processes over one SQLite file: local (no Redis), redis-a and redis-b (SLUICE_REDIS_URL on a loopback redis-server).`,
    `One API key with rpm 10,000,000, tpm 10^9, concurrency 1,000: every call is checked (rpm, concurrency lease, tpm charge), none refused.`,
    `${perRound * rounds} calls per row after ${warmup} warm-up calls, in ${rounds} rounds taking turns; latency is the client's, per call.`,
    `1 caller: the added latency itself (nothing queues); 8 callers: the 2 cores saturated, where added CPU turns into latency.`
  ],
  tables: runs.flatMap((run) => [
    {
      title: `${run.callers} closed-loop caller(s)`,
      headers: ["path", "ok", "req/s", "p50", "p99", "Sluice CPU/call", "Redis CPU/call", "failures"],
      rows: run.summaries.map(({ name, s, failures, sluiceUs, redisUs }) => [
        name,
        String(s.ok),
        fmt.rps(s.rps),
        fmt.ms(s.p50),
        fmt.ms(s.p99),
        us(sluiceUs),
        us(redisUs),
        failureText(failures)
      ])
    },
    {
      title: `Added per call with ${run.callers} caller(s) (differences of the rows above, same run)`,
      headers: ["what", "p50", "p99"],
      rows: [
        ["Redis limits (local hit, Redis vs local limits)", fmt.ms(run.limit.p50), fmt.ms(run.limit.p99)],
        ["Redis limits + shared cache on a miss (vs local)", fmt.ms(run.miss.p50), fmt.ms(run.miss.p99)],
        [
          "shared hit vs a local miss (what a shared hit saves, negative is faster)",
          fmt.ms(run.sharedVsMiss.p50),
          fmt.ms(run.sharedVsMiss.p99)
        ]
      ]
    }
  ]),
  notes: [
    "A Redis decision is one round trip (a Lua script); the PING row is that floor with the same callers.",
    "With a real model the shared hit saves the model's whole latency; here the model costs nothing, so it shows only Sluice's cost."
  ],
  data: runs.map((run) => ({
    callers: run.callers,
    rows: run.summaries.map(({ name, s, sluiceUs, redisUs }) => ({ name, ...s, sluiceUs, redisUs })),
    limit: run.limit,
    miss: run.miss,
    sharedVsMiss: run.sharedVsMiss
  }))
})

pinger.disconnect()
await Promise.all([local.stop(), redisA.stop(), redisB.stop(), sim.stop()])
process.exit(0)
