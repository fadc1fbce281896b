import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Store from "../src/Store/Store.js"

describe("Store", () => {
  it.scoped("opens SQLite in the data directory with WAL, a busy timeout and the migrations applied", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const [mode] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
      assert.strictEqual(mode?.journal_mode, "wal")
      const [busy] = yield* sql<{ timeout: number }>`PRAGMA busy_timeout`
      assert.strictEqual(busy?.timeout, 5000)
      const applied = yield* sql<{ migration_id: number }>`SELECT migration_id FROM effect_sql_migrations`
      assert.isAtLeast(applied.length, 3)
    }).pipe(Effect.provide(Store.layerSqlite({ dataDir: join(mkdtempSync(join(tmpdir(), "sluice-")), "data") })))
  )
})
