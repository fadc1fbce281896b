/**
 * deploy/systemd: `systemd-analyze verify` accepts the units (skipped with the reason where systemd-analyze is
 * missing; .ci/run installs systemd), and the settings the deployment guide promises are there.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration } from "effect"
import { spawnSync } from "node:child_process"
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Shutdown from "../../src/Lifecycle/Shutdown.js"

const has = (bin: string) => spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0
const units = ["sluice.service", "sluice-backup.service", "sluice-backup.timer"]
const unit = (name: string) => readFileSync(join("deploy/systemd", name), "utf8")

/** The values of `key=` lines in a unit (all of them, in order). */
const values = (text: string, key: string) =>
  text
    .split("\n")
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1))

describe("deploy/systemd", () => {
  it.skipIf(!has("systemd-analyze"))(
    "systemd-analyze verify accepts the units, without a warning (needs Debian's systemd: .ci/run installs it)",
    () => {
      // verify resolves the units' names in their own folder; a copy keeps it away from the repository
      const dir = mkdtempSync(join(tmpdir(), "sluice-units-"))
      for (const name of units) copyFileSync(join("deploy/systemd", name), join(dir, name))
      const result = spawnSync("systemd-analyze", ["verify", "--man=no", ...units], { cwd: dir, encoding: "utf8" })
      const said = (result.stdout + result.stderr).split("\n").filter((line) => units.some((u) => line.includes(u)))
      assert.strictEqual(result.status, 0, result.stdout + result.stderr)
      assert.deepStrictEqual(said, [], "systemd-analyze complained about a unit")
    }
  )

  it("sluice.service runs as its own user, sandboxed, writing only the data directory", () => {
    const service = unit("sluice.service")
    assert.deepStrictEqual(values(service, "User"), ["sluice"])
    assert.deepStrictEqual(values(service, "ProtectSystem"), ["strict"])
    assert.deepStrictEqual(values(service, "ReadWritePaths"), ["/var/lib/sluice"])
    assert.include(values(service, "Environment"), "SLUICE_DATA_DIR=/var/lib/sluice")
    for (const [key, value] of [
      ["NoNewPrivileges", "true"],
      ["PrivateTmp", "true"],
      ["ProtectHome", "true"],
      ["Restart", "on-failure"]
    ]) {
      assert.deepStrictEqual(values(service, key!), [value], key)
    }
    assert.match(values(service, "RestrictAddressFamilies")[0] ?? "", /^AF_INET AF_INET6 AF_UNIX$/)
    assert.match(values(service, "MemoryMax")[0] ?? "", /^\d+[KMG]$/)
    assert.match(values(service, "EnvironmentFile")[0] ?? "", /^-?\/etc\/sluice\/sluice\.env$/)
  })

  it("TimeoutStopSec leaves the drain its whole deadline, plus time to close", () => {
    const seconds = Number(/^(\d+)s$/.exec(values(unit("sluice.service"), "TimeoutStopSec")[0] ?? "")?.[1])
    const stop = Duration.seconds(seconds)
    const drain = Duration.toMillis(Shutdown.defaults.drainTimeout)
    assert.isAtLeast(Duration.toMillis(stop), drain + 10_000)
  })

  it("the backup timer starts the backup service, which keeps 7 backups in the data directory", () => {
    assert.deepStrictEqual(values(unit("sluice-backup.timer"), "Unit"), ["sluice-backup.service"])
    assert.deepStrictEqual(values(unit("sluice-backup.timer"), "Persistent"), ["true"])
    const exec = values(unit("sluice-backup.service"), "ExecStart")[0] ?? ""
    assert.match(exec, /sluice\.mjs backup --to \/var\/lib\/sluice\/backups --keep 7$/)
    assert.deepStrictEqual(values(unit("sluice-backup.service"), "ReadWritePaths"), ["/var/lib/sluice"])
  })
})
