/**
 * The database as Store.ts opens it: SQLite in the data directory, WAL, the busy timeout, and exactly the
 * migrations of src/Store/migrations applied, with exactly the tables and indexes their source creates (read from
 * the files, so a migration added, dropped or left out of `migrations/index.ts` fails here).
 */
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Store from "../src/Store/Store.js"

const migrationsDir = fileURLToPath(new URL("../src/Store/migrations/", import.meta.url))
const migrationFile = /^(\d{4})_(\w+)\.ts$/
const files = readdirSync(migrationsDir)
  .filter((file) => migrationFile.test(file))
  .sort()
const source = files.map((file) => readFileSync(join(migrationsDir, file), "utf8")).join("\n")

/** What the files say: `0004_api_keys.ts` is migration 4, "api_keys". */
const expectedMigrations = files.map((file) => {
  const [, id, name] = migrationFile.exec(file)!
  return { migration_id: Number(id), name: name! }
})
const expectedTables = [...source.matchAll(/CREATE TABLE (\w+) \(/g)].map((m) => m[1]!).sort()
const createIndex = /CREATE (UNIQUE )?INDEX (\w+) ON (\w+) \(([^)]*)\)/g
const expectedIndexes = [...source.matchAll(createIndex)]
  .map(([, unique, name, table, columns]) => ({
    name: name!,
    table: table!,
    columns: columns!.split(",").map((c) => c.trim()),
    unique: unique !== undefined
  }))
  .sort((a, b) => a.name.localeCompare(b.name))

describe("Store", () => {
  it("reads the migrations from their files (the parse itself misses nothing)", () => {
    assert.deepStrictEqual(
      files,
      readdirSync(migrationsDir)
        .filter((file) => file !== "index.ts")
        .sort(),
      "every file beside index.ts is a numbered migration"
    )
    assert.deepStrictEqual(
      expectedMigrations.map((m) => m.migration_id),
      files.map((_, i) => i + 1),
      "numbered 1, 2, 3, ... without gaps"
    )
    assert.strictEqual(expectedTables.length, source.match(/CREATE TABLE/g)?.length)
    assert.strictEqual(expectedIndexes.length, source.match(/CREATE (UNIQUE )?INDEX/g)?.length)
    assert.isAbove(expectedIndexes.length, 0)
  })

  it.scoped("opens SQLite in the data directory with WAL, a busy timeout and exactly the migrations applied", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const [mode] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
      assert.strictEqual(mode?.journal_mode, "wal")
      const [busy] = yield* sql<{ timeout: number }>`PRAGMA busy_timeout`
      assert.strictEqual(busy?.timeout, 5000)
      const applied = yield* sql<{
        migration_id: number
        name: string
      }>`SELECT migration_id, name FROM effect_sql_migrations ORDER BY migration_id`
      assert.deepStrictEqual(
        applied.map(({ migration_id, name }) => ({ migration_id, name })),
        expectedMigrations
      )
    }).pipe(Effect.provide(Store.layerSqlite({ dataDir: join(mkdtempSync(join(tmpdir(), "sluice-")), "data") })))
  )

  it.scoped("the migrations create exactly the tables and indexes written in them", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const tables = yield* sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'
        AND name NOT LIKE 'sqlite_%' AND name <> 'effect_sql_migrations' ORDER BY name`
      assert.deepStrictEqual(
        tables.map((t) => t.name),
        expectedTables
      )
      // Named indexes only: SQLite's automatic ones (primary keys) have no SQL.
      const indexes = yield* sql<{ name: string; table: string }>`SELECT name, tbl_name AS ${sql("table")}
        FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name`
      const actual = yield* Effect.forEach(indexes, ({ name, table }) =>
        Effect.all({
          columns: sql<{ name: string }>`SELECT name FROM pragma_index_info(${name}) ORDER BY seqno`,
          list: sql<{ name: string; unique: number }>`SELECT name, "unique" FROM pragma_index_list(${table})`
        }).pipe(
          Effect.map(({ columns, list }) => ({
            name,
            table,
            columns: columns.map((c) => c.name),
            unique: list.find((i) => i.name === name)?.unique === 1
          }))
        )
      )
      assert.deepStrictEqual(
        [...actual].sort((a, b) => a.name.localeCompare(b.name)),
        expectedIndexes
      )
    }).pipe(Effect.provide(Store.layerMemory))
  )
})
