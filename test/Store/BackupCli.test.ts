/**
 * `sluice backup` and `sluice restore` (run in-process, mounted as main.ts mounts them) against the database of a
 * real `sluice serve` process: the backup is taken while it serves; the restore is refused until it stopped.
 */
import { Command } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdtempSync, readdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { backup, restore } from "../../src/Cli/Backup.js"
import { sluice, waitFor } from "../Cli/process.js"

/** Runs `sluice ...args` in-process; succeeds with what it printed, or fails with the error. */
const cli = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const console = yield* Effect.console
    const capture = {
      ...console,
      log: (...parts: ReadonlyArray<unknown>) => Effect.sync(() => void lines.push(parts.join(" ")))
    }
    const command = Command.make("sluice").pipe(Command.withSubcommands([backup, restore]))
    const run = Command.run(command, { name: "sluice", version: "0.0.0" })
    yield* run(["node", "sluice", ...args]).pipe(Effect.withConsole(capture), Effect.provide(NodeContext.layer))
    return lines.join("\n")
  })

describe("sluice backup / restore", () => {
  it.scopedLive("backs up a serving database; restore waits until the server stopped", () =>
    Effect.gen(function* () {
      const server = yield* sluice(["serve", "--port", "0", "--backend", "simulator"])
      const url = yield* waitFor(server, /Listening on (http:\/\/[\w.:[\]]+)/)
      yield* Effect.promise(() =>
        fetch(`${url}/api/chat`, {
          method: "POST",
          body: JSON.stringify({ model: "llama3.2", stream: false, messages: [{ role: "user", content: "hi" }] })
        }).then((r) => r.text())
      )
      const dataDir = server.dataDir
      const printed = yield* cli(["backup", "--data-dir", dataDir, "--keep", "2"])
      assert.match(printed, /backed up .* to .*sluice-\d{8}-\d{6}\.db \(\d+ bytes in \d+ ms, integrity ok\)/)
      const file = join(dataDir, "backups", readdirSync(join(dataDir, "backups"))[0]!)

      const refused = yield* Effect.flip(cli(["restore", "--data-dir", dataDir, "--force", file]))
      assert.include(String(refused), "a running Sluice has the database open")

      server.child.kill("SIGTERM")
      assert.strictEqual(yield* Effect.promise(() => server.exited), 0)
      const done = yield* cli(["restore", "--data-dir", dataDir, "--force", file])
      assert.include(done, `restored ${file} into ${join(dataDir, "sluice.db")} (integrity ok)`)
      assert.match(done, /the replaced database is kept as .*sluice\.db\.replaced-\d{8}-\d{6}/)
      assert.isTrue(existsSync(join(dataDir, "sluice.db")))
    })
  )

  it.scopedLive("--keep below 1 and a missing database are clear errors", () =>
    Effect.gen(function* () {
      const empty = mkdtempSync(join(tmpdir(), "sluice-backup-none-"))
      const keep = yield* Effect.flip(cli(["backup", "--data-dir", empty, "--keep", "0"]))
      assert.include(String(keep), "--keep must be at least 1")
      const none = yield* Effect.flip(cli(["backup", "--data-dir", empty]))
      assert.include(String(none), "no database")
    })
  )
})
