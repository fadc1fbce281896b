/**
 * Online backup and restore (Store/Backup.ts) on real SQLite files: a backup taken while 200 writes are in
 * flight (from this process, and from another process writing without pause) restores to an intact database
 * that holds exactly a prefix of the committed rows, and at least every row committed before the backup began.
 */
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, TestClock } from "effect"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Backup from "../../src/Store/Backup.js"
import * as Store from "../../src/Store/Store.js"

const tempDir = () => mkdtempSync(join(tmpdir(), "sluice-backup-"))

/** The probe rows of the database in `dataDir` (opened, migrated and closed again) and its integrity. */
const readBack = (dataDir: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all({
      integrity: sql<{ integrity_check: string }>`PRAGMA integrity_check`,
      ids: sql<{ id: number }>`SELECT id FROM backup_probe ORDER BY id`
    })
  ).pipe(
    Effect.map(({ ids, integrity }) => ({
      integrity: integrity.map((r) => r.integrity_check),
      ids: ids.map((r) => r.id)
    })),
    Effect.provide(Store.layerSqlite({ dataDir }))
  )

/** The restored ids are exactly the first ones in commit order, and include every id committed before. */
const assertPrefix = (restored: ReadonlyArray<number>, commitOrder: ReadonlyArray<number>, before: number) => {
  assert.isAtLeast(restored.length, before, "every row committed before the backup started is there")
  assert.deepStrictEqual(
    [...restored].sort((a, b) => a - b),
    commitOrder.slice(0, restored.length).sort((a, b) => a - b),
    "the backup is a consistent snapshot: a prefix of the commits"
  )
}

const probeTable = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql`CREATE TABLE backup_probe (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)`
)

describe("Backup", () => {
  it.live("a backup taken while 200 writes are in flight restores intact, with every row committed before it", () => {
    const dataDir = tempDir()
    return Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* probeTable
      const committed: Array<number> = []
      const write = (id: number) =>
        Effect.sleep(Duration.millis((id * 37) % 1000)).pipe(
          Effect.zipRight(sql`INSERT INTO backup_probe (id, payload) VALUES (${id}, ${"x".repeat(512)})`),
          Effect.tap(() => Effect.sync(() => committed.push(id)))
        )
      const ids = Array.from({ length: 200 }, (_, i) => i + 1)
      const writer = yield* Effect.fork(Effect.forEach(ids, write, { concurrency: "unbounded", discard: true }))
      while (committed.length < 10) yield* Effect.sleep("5 millis")
      const before = committed.length
      const report = yield* Backup.take({ dataDir })
      yield* Fiber.join(writer)
      assert.isAbove(before, 0)
      assert.isBelow(before, 200, "writes were still in flight when the backup started")
      assert.strictEqual(committed.length, 200)

      const fresh = tempDir()
      yield* Backup.restore({ file: report.file, dataDir: fresh })
      const restored = yield* readBack(fresh)
      assert.deepStrictEqual(restored.integrity, ["ok"])
      assertPrefix(restored.ids, committed, before)
      assert.deepStrictEqual((yield* sql<{ n: number }>`SELECT count(*) AS n FROM backup_probe`)[0]?.n, 200)
    }).pipe(Effect.provide(Store.layerSqlite({ dataDir })))
  })

  it.live("a backup finishes while another process writes without pause, and is a consistent snapshot", () =>
    Effect.gen(function* () {
      const dataDir = tempDir()
      yield* probeTable.pipe(Effect.provide(Store.layerSqlite({ dataDir })))
      const writer = yield* Effect.acquireRelease(
        Effect.sync(() => spawnWriter(Store.databaseFile(dataDir))),
        (w) => Effect.sync(() => w.child.kill("SIGKILL"))
      )
      while (writer.committed.length < 100) yield* Effect.sleep("5 millis")
      const before = writer.committed.length
      const report = yield* Backup.take({ dataDir })
      const fresh = tempDir()
      yield* Backup.restore({ file: report.file, dataDir: fresh })
      const restored = yield* readBack(fresh)
      assert.deepStrictEqual(restored.integrity, ["ok"])
      // the writer reports each id after its commit, through a pipe: wait until it reported past the backup
      while (writer.committed.length <= restored.ids.length) yield* Effect.sleep("5 millis")
      assertPrefix(restored.ids, writer.committed, before)
    }).pipe(Effect.scoped)
  )

  it.scoped("restore refuses a database in use, an existing one without --force, and a damaged file", () =>
    Effect.gen(function* () {
      const dataDir = tempDir()
      yield* Layer.build(Store.layerSqlite({ dataDir }))
      const report = yield* Backup.take({ dataDir })
      const inUse = yield* Effect.flip(Backup.restore({ file: report.file, dataDir, force: true }))
      assert.match(inUse.message, /running Sluice has the database open/)
      assert.isTrue(yield* Backup.inUse(Store.databaseFile(dataDir)))

      const damaged = join(tempDir(), "damaged.db")
      writeFileSync(damaged, Buffer.alloc(8192, 7))
      const bad = yield* Effect.flip(Backup.restore({ file: damaged, dataDir: tempDir() }))
      assert.strictEqual(bad.operation, "verify")
      assert.match(bad.message, /not a database/)
    })
  )

  it.effect("restore keeps the replaced database beside it; retention keeps the newest N and nothing else", () =>
    Effect.gen(function* () {
      const dataDir = tempDir()
      yield* probeTable.pipe(Effect.provide(Store.layerSqlite({ dataDir })))
      const to = tempDir()
      writeFileSync(join(to, "notes.txt"), "not a backup")
      const taken: Array<string> = []
      for (const at of ["2025-06-01T03:00:00Z", "2025-06-02T03:00:00Z", "2025-06-03T03:00:00Z"]) {
        yield* TestClock.setTime(Date.parse(at))
        taken.push((yield* Backup.take({ dataDir, to, keep: 2 })).file)
      }
      const again = yield* Backup.take({ dataDir, to, keep: 2 })
      assert.deepStrictEqual(readdirSync(to).sort(), [
        "notes.txt",
        "sluice-20250603-030000-2.db",
        "sluice-20250603-030000.db"
      ])
      assert.strictEqual(again.file, join(to, "sluice-20250603-030000-2.db"))

      const refused = yield* Effect.flip(Backup.restore({ file: again.file, dataDir }))
      assert.match(refused.message, /pass --force/)
      const restored = yield* Backup.restore({ file: again.file, dataDir, force: true })
      assert.strictEqual(restored.previous, join(dataDir, "sluice.db.replaced-20250603-030000"))
      assert.isTrue(existsSync(restored.previous ?? ""))
      assert.deepStrictEqual((yield* readBack(dataDir)).integrity, ["ok"])
    })
  )
})

/** A child process inserting rows 1, 2, 3, ... one per transaction, printing each id once committed. */
const spawnWriter = (file: string) => {
  const script = `
    const db = new (require("better-sqlite3"))(${JSON.stringify(file)})
    db.pragma("journal_mode = WAL"); db.pragma("busy_timeout = 5000")
    const insert = db.prepare("INSERT INTO backup_probe (id, payload) VALUES (?, ?)")
    let id = 0
    const step = () => { for (let i = 0; i < 5; i++) { insert.run(++id, "y".repeat(512)); process.stdout.write(id + "\\n") } setImmediate(step) }
    step()`
  const child = spawn(process.execPath, ["-e", script], { cwd: process.cwd(), stdio: ["ignore", "pipe", "inherit"] })
  const committed: Array<number> = []
  let rest = ""
  child.stdout.on("data", (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split("\n")
    rest = lines.pop() ?? ""
    for (const line of lines) committed.push(Number(line))
  })
  return { child, committed }
}
