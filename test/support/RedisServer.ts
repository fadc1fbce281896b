/**
 * A real Redis for tests: `redis-server` from the system's packages (Debian: redis-server), started on a free
 * loopback port in a temporary directory, with no persistence, and stopped when the scope closes. `stop` and
 * `start` take it down and bring it back on the same port, for the "Redis went away" scenarios.
 *
 * `redisBinary` is undefined when the binary is absent: a test then skips, saying why (`.ci/run` installs it, so
 * CI never skips).
 */
import { Effect } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

const which = (name: string): string | undefined => {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
}

/** The `redis-server` binary, or undefined when this machine has none. */
export const redisBinary: string | undefined = which("redis-server")

/** Why a Redis test is skipped here, for `it.skipIf(...)` titles. */
export const skipReason = "skipped: no redis-server binary (apt-get install redis-server; CI installs it)"

export interface RedisServer {
  readonly url: string
  readonly port: number
  /** Stops the server (SIGKILL, as a crash would). */
  readonly stop: Effect.Effect<void>
  /** Starts it again on the same port, empty. */
  readonly start: Effect.Effect<void>
}

/** A free loopback port (bound, then closed). */
export const freePort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const address = server.address()
        server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
      })
    })
)

/** Resolves once something accepts connections on `port` (within ~10 s). */
export const waitForPort = (port: number) =>
  Effect.promise(async () => {
    for (let i = 0; i < 500; i++) {
      const open = await new Promise<boolean>((resolve) => {
        const socket = createConnection({ port, host: "127.0.0.1" })
        socket.once("connect", () => (socket.destroy(), resolve(true)))
        socket.once("error", () => resolve(false))
      })
      if (open) return
      await new Promise((r) => setTimeout(r, 20))
    }
    throw new Error(`nothing listens on 127.0.0.1:${port}`)
  })

/** Starts a Redis server for the scope. Dies when the binary is absent: guard with `redisBinary`. */
export const redisServer = Effect.gen(function* () {
  const binary = redisBinary
  if (binary === undefined) return yield* Effect.dieMessage(skipReason)
  const port = yield* freePort
  const dir = mkdtempSync(join(tmpdir(), "sluice-redis-"))
  let child: ChildProcess | undefined
  const start = Effect.suspend(() => {
    child = spawn(
      binary,
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
      { stdio: "ignore" }
    )
    return waitForPort(port)
  })
  const stop = Effect.promise(async () => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    const exited = new Promise((resolve) => running.once("exit", resolve))
    running.kill("SIGKILL")
    await exited
  })
  yield* Effect.acquireRelease(start, () =>
    Effect.zipRight(
      stop,
      Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
  )
  return { url: `redis://127.0.0.1:${port}`, port, stop, start } satisfies RedisServer
})
