/**
 * A real PostgreSQL for tests: `initdb` and `postgres` from the system's packages (Debian: postgresql, binaries in
 * /usr/lib/postgresql/<major>/bin), a fresh cluster in a temporary directory, listening on a free loopback port
 * (its unix socket in that directory too), trust authentication, fsync off, stopped and removed when the scope
 * closes. One server per test file (`Postgres.layer` under `layer(...)`); `createDatabase` gives every test an
 * empty database of its own. `stop` and `start` take it down (an immediate shutdown, as a crash) and bring it back
 * on the same port with its data, for the "PostgreSQL went away" scenarios.
 *
 * PostgreSQL refuses to run as root: when this process is root, initdb and postgres run as the `postgres` user
 * (`setpriv`, which execs, so a signal reaches postgres itself; `runuser` when setpriv is missing) and the
 * directory is given to that user.
 *
 * `postgresBinary` is undefined when the binaries are absent: a test then skips, saying why (`.ci/run` installs
 * them, so CI never skips).
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "./RedisServer.js"

const which = (name: string): string | undefined => {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
}

/** The directory holding initdb and postgres: the newest /usr/lib/postgresql/<major>/bin, else the PATH's. */
const binDir = (): string | undefined => {
  const root = "/usr/lib/postgresql"
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, "bin", "postgres")))
        .sort((a, b) => Number(b) - Number(a))
    : []
  if (majors.length > 0) return join(root, majors[0]!, "bin")
  const postgres = which("postgres")
  const initdb = which("initdb")
  return postgres !== undefined && initdb !== undefined ? join(postgres, "..") : undefined
}

const bin = binDir()

/** The directory of postgres, initdb, pg_dump and pg_restore, or undefined when this machine has none. */
export const postgresBin: string | undefined = bin

/** The `postgres` binary, or undefined when this machine has none. */
export const postgresBinary: string | undefined = bin === undefined ? undefined : join(bin, "postgres")

/** Why a PostgreSQL test is skipped here, for `describe.skipIf(...)` titles. */
export const skipReason = "skipped: no postgres binary (apt-get install postgresql; CI installs it)"

const root = typeof process.getuid === "function" && process.getuid() === 0

/** The command and arguments that run `binary` as the `postgres` user when this process is root. */
const asPostgres = (binary: string, args: ReadonlyArray<string>): [string, Array<string>] => {
  if (!root) return [binary, [...args]]
  return which("setpriv") !== undefined
    ? ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", binary, ...args]]
    : ["runuser", ["-u", "postgres", "--", binary, ...args]]
}

export interface PostgresServer {
  readonly port: number
  /** The URL of database `database` (default `postgres`) as the `postgres` user (no password: trust). */
  readonly url: (database?: string) => string
  /** Creates an empty database (a copy of `template` when given) and returns its URL. */
  readonly createDatabase: (template?: string) => Effect.Effect<string>
  /** Stops the server at once (SIGQUIT: immediate shutdown, recovery at the next start). */
  readonly stop: Effect.Effect<void>
  /** Starts it again on the same port, with its data. */
  readonly start: Effect.Effect<void>
}

/** Runs `postgres` and resolves once it accepts connections (its log says so). */
const launch = (dir: string, port: number) =>
  Effect.async<ChildProcess, Error>((resume) => {
    const [command, args] = asPostgres(join(bin!, "postgres"), [
      ...["-D", join(dir, "data"), "-p", String(port), "-h", "127.0.0.1", "-k", dir],
      ...["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
      ...["-c", "shared_buffers=32MB", "-c", "max_connections=100"]
    ])
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] })
    let log = ""
    let ready = false
    const onData = (chunk: Buffer) => {
      log += chunk.toString()
      if (!ready && log.includes("database system is ready to accept connections")) {
        ready = true
        child.stderr!.off("data", onData)
        child.stderr!.resume()
        resume(Effect.succeed(child))
      }
    }
    child.stderr!.on("data", onData)
    child.once("exit", (code) => {
      if (!ready) resume(Effect.fail(new Error(`postgres exited with ${code}:\n${log}`)))
    })
  }).pipe(Effect.orDie)

const initdb = (dir: string) =>
  Effect.sync(() => {
    if (root) chownSync(dir, uidOf("postgres"), gidOf("postgres"))
    const [command, args] = asPostgres(join(bin!, "initdb"), [
      ...["-D", join(dir, "data"), "-U", "postgres", "--auth=trust", "--no-sync"],
      ...["--encoding=UTF8", "--locale=C"]
    ])
    execFileSync(command, args, { stdio: "pipe" })
  })

const uidOf = (user: string) => Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim())
const gidOf = (user: string) => Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim())

/** Starts a PostgreSQL server for the scope. Dies when the binaries are absent: guard with `postgresBinary`. */
export const postgresServer = Effect.gen(function* () {
  if (bin === undefined) return yield* Effect.dieMessage(skipReason)
  const port = yield* freePort
  const dir = mkdtempSync(join(tmpdir(), "sluice-pg-"))
  let child: ChildProcess | undefined
  const start = Effect.map(launch(dir, port), (running) => {
    child = running
  })
  const stop = Effect.promise(async () => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    const exited = new Promise((resolve) => running.once("exit", resolve))
    running.kill("SIGQUIT")
    await exited
  })
  yield* Effect.acquireRelease(Effect.zipRight(initdb(dir), start), () =>
    Effect.zipRight(
      stop,
      Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
  )
  const url = (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`
  const admin = yield* Effect.map(Layer.build(PgClient.layer({ url: Redacted.make(url()) })), (context) =>
    Context.get(context, PgClient.PgClient)
  ).pipe(Effect.orDie)
  let databases = 0
  const createDatabase = (template?: string) =>
    Effect.suspend(() => {
      const name = `sluice_${++databases}`
      const from = template === undefined ? "" : ` TEMPLATE ${template}`
      return Effect.as(admin.unsafe(`CREATE DATABASE ${name}${from}`), url(name))
    }).pipe(Effect.orDie)
  return { port, url, createDatabase, stop, start } satisfies PostgresServer
})

/** One server for a test file: `layer(Postgres.layer)("...", (it) => ...)`. */
export class Postgres extends Context.Tag("test/Postgres")<Postgres, PostgresServer>() {
  static readonly layer = Layer.scoped(Postgres, postgresServer)
}
