/**
 * The server under the client under test, in its own process: the simulator (`simulator-process.ts`, with a
 * latency model given as a config override), the fixed-reply stub (`stub-server.ts`) or `sluice serve`. Reads the
 * URL the child prints; `stop` sends SIGTERM and waits for the exit. `cpuMs` reads the child's CPU time from /proc
 * (Linux), so a bench can tell when the server, not the client, was the limit.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { freshBundle } from "./Fresh.js"
import type { ConfigOverrides, ModelConfig } from "../../src/Simulator/SimulatorConfig.js"
import type { SimulatorStats } from "../../src/Simulator/Stats.js"

export interface Server {
  readonly url: string
  readonly pid: number
  /** CPU (user + system) the server process used so far, ms; NaN where /proc is missing. */
  readonly cpuMs: () => number
  readonly stop: () => Promise<void>
}

export interface Simulator extends Server {
  readonly stats: () => Promise<SimulatorStats>
  readonly resetStats: () => Promise<void>
}

const clockTick = 100

const cpuOf = (pid: number) => (): number => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTick
  } catch {
    return NaN
  }
}

/** Children still running: killed if the bench process exits without stopping them (a failed scenario). */
const running = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL")
})

const start = (args: Array<string>, pattern: RegExp, env?: NodeJS.ProcessEnv): Promise<Server> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "inherit"],
      ...(env === undefined ? {} : { env })
    })
    running.add(child)
    child.once("exit", () => running.delete(child))
    let out = ""
    const onData = (data: Buffer) => {
      out += data.toString()
      const match = pattern.exec(out.replace(/\x1b\[[0-9;]*m/g, ""))
      if (match === null) return
      child.stdout!.off("data", onData)
      child.stdout!.resume()
      const exited = new Promise<void>((done) => child.once("exit", () => done()))
      resolve({
        url: match[1]!,
        pid: child.pid!,
        cpuMs: cpuOf(child.pid!),
        stop: () => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
          return exited
        }
      })
    }
    child.stdout!.on("data", onData)
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code} before listening`)))
  })

/** Starts the simulator with `config` (merged over the default config). */
export const simulator = async (config: ConfigOverrides): Promise<Simulator> => {
  const server = await start(
    ["--import", "tsx", "bench/simulator-process.ts", JSON.stringify(config)],
    /listening on (http:\/\/[^\s"'}\\]+)/
  )
  return {
    ...server,
    stats: () => fetch(`${server.url}/_sim/stats`).then((r) => r.json() as Promise<SimulatorStats>),
    resetStats: () => fetch(`${server.url}/_sim/reset`, { method: "POST" }).then((r) => void r.body?.cancel())
  }
}

/**
 * The node flags `npm start` runs `sluice serve` with (package.json's start script, e.g. its young-generation size),
 * so the benches measure the gateway as it ships.
 */
export const shippedNodeFlags: ReadonlyArray<string> = (() => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    readonly scripts: Readonly<Record<string, string>>
  }
  return pkg.scripts.start!.split(" ").filter((word) => word.startsWith("--"))
})()

/**
 * Starts `sluice serve` (the built bundle, bin/sluice.mjs; refused when older than src/) on a free port in front of
 * `backend`, with `env`, the shipped node flags and `nodeFlags` (e.g. `--cpu-prof`, which NODE_OPTIONS refuses).
 */
export const sluiceServe = (
  backend: string,
  env: NodeJS.ProcessEnv,
  nodeFlags: ReadonlyArray<string> = []
): Promise<Server> => {
  freshBundle("dist/sluice.mjs")
  return start(
    [...shippedNodeFlags, ...nodeFlags, "bin/sluice.mjs", "serve", "--port", "0", "--ollama", backend],
    /Listening on (http:\/\/[^\s"'}\\]+)/,
    env
  )
}

/** Starts the minimal Node proxy in front of `backend` (bench/proxy-server.ts): the gateway bench's floor. */
export const proxy = (backend: string): Promise<Server> =>
  start(
    [...shippedNodeFlags, "--import", "tsx", "bench/proxy-server.ts", backend],
    /listening on (http:\/\/[^\s"'}\\]+)/
  )

/** Starts the fixed-reply stub server. */
export const stub = (): Promise<Server> =>
  start(["--import", "tsx", "bench/stub-server.ts"], /listening on (http:\/\/[^\s"'}\\]+)/)

/** A model config with only the latency model spelled out; everything else from the defaults. */
export const model = (
  base: ModelConfig,
  latency: Pick<ModelConfig, "numParallel" | "loadMs" | "promptTokenMs" | "outputTokenMs" | "jitter"> & {
    readonly requestMs?: number
  }
): ModelConfig => ({ ...base, ...latency })

/** One line stating a model's latency model. */
export const describeModel = (m: ModelConfig): string =>
  `${m.name}: ${m.numParallel} slots, load ${m.loadMs} ms, ${m.requestMs ?? 0} ms per request, ` +
  `${m.promptTokenMs} ms per prompt token, ${m.outputTokenMs} ms per output token, jitter ±${m.jitter * 100} %`
