/** Test helpers: run the built `sluice` command as a child process, as a user (or systemd) would. */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface Running {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>
  /** The data directory the child was given (SLUICE_DATA_DIR). */
  readonly dataDir: string
}

/** A loopback port nothing listens on (bound, then closed). */
export const closedPort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const address = server.address()
        server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
      })
    })
)

/** Starts `node bin/sluice.mjs ...args`; killed when the scope closes. */
export const sluice = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.sync((): Running => {
      const { NODE_ENV: _n, SLUICE_BACKEND: _b, OLLAMA_HOST: _o, ...inherited } = process.env
      const dataDir = mkdtempSync(join(tmpdir(), "sluice-cli-"))
      const child = spawn(process.execPath, ["bin/sluice.mjs", ...args], {
        env: { ...inherited, SLUICE_DATA_DIR: dataDir, ...env }
      })
      let out = ""
      let err = ""
      child.stdout.on("data", (d: Buffer) => (out += d.toString()))
      child.stderr.on("data", (d: Buffer) => (err += d.toString()))
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
      return { child, stdout: () => out, stderr: () => err, exited, dataDir }
    }),
    (running) => Effect.sync(() => running.child.kill("SIGKILL"))
  )

/** Waits until stdout matches `pattern` (or the process exits), returning the first group. */
export const waitFor = (running: Pick<Running, "stdout" | "stderr" | "exited">, pattern: RegExp) =>
  Effect.async<string, Error>((resume) => {
    const check = () => {
      const match = pattern.exec(running.stdout().replace(/\x1b\[[0-9;]*m/g, ""))
      if (match) {
        clearInterval(timer)
        resume(Effect.succeed(match[1] ?? match[0]))
      }
    }
    const timer = setInterval(check, 20)
    running.exited.then((code) => {
      clearInterval(timer)
      resume(Effect.fail(new Error(`exited with ${code}: ${running.stdout()} ${running.stderr()}`)))
    })
    return Effect.sync(() => clearInterval(timer))
  })
