/**
 * The database as Store.ts opens it: SQLite in the data directory, WAL, the busy timeout; and on SQLite and on
 * PostgreSQL, exactly the migrations of src/Store/migrations applied, with exactly the tables and indexes their
 * source creates (read from the files, so a migration added, dropped or left out of `migrations/index.ts` fails
 * here), every time column 64-bit.
 */
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Store from "../src/Store/Store.js"
import { eachStore, freshStore } from "./support/Stores.js"

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

  it.scoped("opens SQLite in the data directory with WAL and a busy timeout", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const [mode] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
      assert.strictEqual(mode?.journal_mode, "wal")
      const [busy] = yield* sql<{ timeout: number }>`PRAGMA busy_timeout`
      assert.strictEqual(busy?.timeout, 5000)
    }).pipe(Effect.provide(Store.layerSqlite({ dataDir: join(mkdtempSync(join(tmpdir(), "sluice-")), "data") })))
  )
})

interface Index {
  readonly name: string
  readonly table: string
  readonly columns: ReadonlyArray<string>
  readonly unique: boolean
}

/** The tables, named indexes and column types as the database itself reports them. */
const schemaOf = (sql: SqlClient.SqlClient) =>
  sql.onDialectOrElse({
    pg: () =>
      Effect.all({
        tables: sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables
          WHERE table_schema = 'public' AND table_name <> 'effect_sql_migrations' ORDER BY table_name`,
        indexes: Effect.map(
          sql<{ name: string; table: string; columns: string; unique: boolean }>`SELECT i.relname AS name,
            t.relname AS ${sql("table")}, ix.indisunique AS ${sql("unique")},
            array_to_string(ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord), ',') AS columns
            FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public' AND NOT ix.indisprimary`,
          (rows): Array<Index> => rows.map((r) => ({ ...r, columns: r.columns.split(",") }))
        ),
        columns: sql<{ table: string; column: string; type: string }>`SELECT table_name AS ${sql("table")},
          column_name AS ${sql("column")}, data_type AS type FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name <> 'effect_sql_migrations'`
      }),
    orElse: () =>
      Effect.all({
        tables: sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'
          AND name NOT LIKE 'sqlite_%' AND name <> 'effect_sql_migrations' ORDER BY name`,
        // Named indexes only: SQLite's automatic ones (primary keys) have no SQL.
        indexes: Effect.flatMap(
          sql<{ name: string; table: string }>`SELECT name, tbl_name AS ${sql("table")}
            FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name`,
          (indexes) =>
            Effect.forEach(indexes, ({ name, table }) =>
              Effect.all({
                columns: sql<{ name: string }>`SELECT name FROM pragma_index_info(${name}) ORDER BY seqno`,
                list: sql<{ name: string; unique: number }>`SELECT name, "unique" FROM pragma_index_list(${table})`
              }).pipe(
                Effect.map(({ columns, list }): Index => ({
                  name,
                  table,
                  columns: columns.map((c) => c.name),
                  unique: list.find((i) => i.name === name)?.unique === 1
                }))
              )
            )
        ),
        columns: sql<{ table: string; column: string; type: string }>`SELECT m.name AS ${sql("table")},
          p.name AS ${sql("column")}, p.type AS type FROM sqlite_master m, pragma_table_info(m.name) p
          WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'effect_sql_migrations'`
      })
  })

eachStore("Store: the migrations", (it) => {
  it.effect("are applied, exactly those of the files", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const applied = yield* sql<{
        migration_id: number
        name: string
      }>`SELECT migration_id, name FROM effect_sql_migrations ORDER BY migration_id`
      assert.deepStrictEqual(
        applied.map(({ migration_id, name }) => ({ migration_id, name })),
        expectedMigrations
      )
    }).pipe(Effect.provide(freshStore))
  )

  it.effect("create exactly the tables and indexes written in them", () =>
    Effect.gen(function* () {
      const { indexes, tables } = yield* schemaOf(yield* SqlClient.SqlClient)
      assert.deepStrictEqual(
        tables.map((t) => t.name),
        expectedTables
      )
      assert.deepStrictEqual(
        [...indexes].sort((a, b) => a.name.localeCompare(b.name)),
        expectedIndexes
      )
    }).pipe(Effect.provide(freshStore))
  )

  it.effect("declare every time (a column named *_at, in ms) BIGINT: PostgreSQL's INTEGER is 32-bit", () =>
    Effect.gen(function* () {
      const { columns } = yield* schemaOf(yield* SqlClient.SqlClient)
      const times = columns.filter((c) => c.column.endsWith("_at"))
      assert.isAbove(times.length, 10)
      assert.deepStrictEqual(
        times.filter((c) => c.type.toUpperCase() !== "BIGINT").map((c) => `${c.table}.${c.column} ${c.type}`),
        []
      )
    }).pipe(Effect.provide(freshStore))
  )
})
