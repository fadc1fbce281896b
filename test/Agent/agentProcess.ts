/**
 * Test helpers: run `sluice agent ...` as a child process. The built bundle (`bin/sluice.mjs`, rebuilt by the
 * global setup) is used once src/main.ts mounts the command; until then the same command runs from the sources
 * through `agentCli.ts` (tsx).
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { waitFor } from "../Cli/process.js"

export interface AgentProcess {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>
}

const bundled = (() => {
  try {
    return readFileSync("dist/sluice.mjs", "utf8").includes("Run agent specs toward a goal, resume")
  } catch {
    return false
  }
})()

const entry = bundled ? ["bin/sluice.mjs"] : ["--import", "tsx", "test/Agent/agentCli.ts"]

/** Starts `sluice agent ...args`; killed when the scope closes. */
export const agentCommand = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync((): AgentProcess => {
      const { NODE_ENV: _n, SLUICE_BACKEND: _b, OLLAMA_HOST: _o, SLUICE_DATA_DIR: _d, ...inherited } = process.env
      const child = spawn(process.execPath, [...entry, "agent", ...args], { env: inherited })
      let out = ""
      let err = ""
      child.stdout.on("data", (d: Buffer) => (out += d.toString()))
      child.stderr.on("data", (d: Buffer) => (err += d.toString()))
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
      return { child, stdout: () => out, stderr: () => err, exited }
    }),
    (running) => Effect.sync(() => running.child.kill("SIGKILL"))
  )

/** Runs `sluice agent ...args` to its end: exit code and output. */
export const agentOutput = (args: ReadonlyArray<string>) =>
  Effect.scoped(
    Effect.flatMap(agentCommand(args), (running) =>
      Effect.map(
        Effect.promise(() => running.exited),
        (code) => ({
          code,
          stdout: running.stdout(),
          stderr: running.stderr()
        })
      )
    )
  )

/** Waits until stdout matches `pattern`, returning the first group; fails when the process exits first. */
export const waitForOutput = (running: AgentProcess, pattern: RegExp) => waitFor(running, pattern)
