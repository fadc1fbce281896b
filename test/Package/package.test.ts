/**
 * The package as a user installs it: `npm pack` (which builds, as publishing does: prepack's declarations, then
 * prepare's bundles), the tarball installed into a fresh Effect app with the peer dependencies, the app type-checked
 * by this repo's TypeScript under a strict tsconfig without skipLibCheck, compiled and run with node: one chat
 * through `Engine.layer` over the simulator.
 * While it runs, a module hook records every module Node resolves: the library entry must not load
 * @effect/cluster, @effect/rpc or @effect/workflow, and the app must hold one copy of effect.
 *
 * The install prefers npm's local cache (`npm ci` fills it with the tarballs; package metadata it lacks comes from
 * the registry) and skips install scripts: the only native addon that builds from source (better-sqlite3) is not
 * opened by a chat, and usearch ships prebuilt binaries.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as App from "./ConsumerApp.js"

const repo = fileURLToPath(new URL("../../", import.meta.url))

/** The child's environment without the `npm_*` variables an enclosing `npm test` sets for its own run. */
const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("npm_")))

/** Runs a command to completion; fails with its output when it exits with an error. */
const run = (command: string, args: ReadonlyArray<string>, cwd: string, extra: Record<string, string> = {}) =>
  Effect.tryPromise({
    try: () =>
      new Promise<string>((resolve, reject) =>
        execFile(
          command,
          args,
          { cwd, env: { ...env, ...extra }, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
          (error, stdout, stderr) =>
            error
              ? reject(new Error(`${command} ${args.join(" ")}: ${error.message}\n${stdout}\n${stderr}`))
              : resolve(stdout)
        )
      ),
    catch: (error) => error as Error
  })

const tempDirectory = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "sluice-package-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

interface Packed {
  readonly filename: string
  readonly files: ReadonlyArray<{ readonly path: string; readonly size: number }>
}

describe("the packed package", () => {
  it.scoped(
    "installs into a fresh Effect app that type-checks strictly, runs a chat, and loads no cluster, rpc or workflow",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDirectory
        const packed = yield* run("npm", ["pack", "--json", "--pack-destination", dir], repo)
        const [tarball] = JSON.parse(packed.slice(packed.indexOf("[\n"))) as Array<Packed>
        const paths = tarball!.files.map((f) => f.path)
        assert.include(paths, "dist/index.mjs")
        assert.include(paths, "dist/types/index.d.ts")
        assert.deepStrictEqual(
          paths.filter((p) => p.endsWith(".map") || p.startsWith("src/")),
          [],
          "no source maps or sources"
        )

        const app = join(dir, "app")
        yield* run("mkdir", [app], dir)
        yield* Effect.promise(() =>
          Promise.all([
            writeFile(join(app, "package.json"), App.packageJson(join(dir, tarball!.filename))),
            writeFile(join(app, "tsconfig.json"), App.tsconfig),
            writeFile(join(app, "main.ts"), App.mainTs),
            writeFile(join(app, "record.mjs"), App.recordMjs),
            writeFile(join(app, "record-hooks.mjs"), App.recordHooksMjs)
          ])
        )
        const install = [
          "install",
          "--prefer-offline",
          "--ignore-scripts",
          "--no-audit",
          "--no-fund",
          "--loglevel=error"
        ]
        yield* run("npm", install, app)

        // Type-checks (every .d.ts included) and compiles to out/main.js.
        yield* run(process.execPath, [join(repo, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], app)

        const record = join(app, "modules.txt")
        const output = yield* run(process.execPath, ["--import", "./record.mjs", "out/main.js"], app, {
          RECORD_FILE: record
        })
        const [chat, missing] = output.trim().split("\n")
        const reply = JSON.parse(chat ?? "{}") as { role?: string; content?: string }
        assert.strictEqual(reply.role, "assistant")
        assert.isAbove(reply.content?.length ?? 0, 0)
        assert.strictEqual(missing, "ModelNotFound")

        const modules = (yield* Effect.promise(() => readFile(record, "utf8"))).trim().split("\n")
        const inApp = `file://${app}/node_modules/`
        assert.include(modules, `${inApp}sluice/dist/index.mjs`)
        assert.deepStrictEqual(
          modules.filter((url) => /\/node_modules\/@effect\/(cluster|rpc|workflow)\//.test(url)),
          [],
          "the library entry loads no @effect/cluster, @effect/rpc or @effect/workflow module"
        )
        const effects = modules.filter((url) => /\/node_modules\/effect\//.test(url))
        assert.isAbove(effects.length, 0)
        assert.deepStrictEqual(
          effects.filter((url) => !url.startsWith(`${inApp}effect/`)),
          [],
          "one copy of effect"
        )
      }),
    300_000
  )
})
