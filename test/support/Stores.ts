/**
 * The store tests run on both databases: `eachStore(name, suite)` runs `suite` once on SQLite (in memory) and once
 * on PostgreSQL (a real server for the file, test/support/PostgresServer.ts), skipped, saying why, only when the
 * postgres binary is absent. A test provides `freshStore` to get an empty, migrated database of its own (a new
 * in-memory SQLite, or a new PostgreSQL database on the file's server, copied from one migrated at the start of
 * the file, so each test does not pay for the migrations), so tests never see each other's rows.
 *
 * Call `eachStore` once per file: each call starts its own PostgreSQL server.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { describe, layer, type Vitest } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, TestContext } from "effect"
import * as Store from "../../src/Store/Store.js"
import { Postgres, postgresBinary, skipReason } from "./PostgresServer.js"

export type Kind = "sqlite" | "postgres"

/** The database a suite runs on. */
export class StoreUnderTest extends Context.Tag("test/StoreUnderTest")<
  StoreUnderTest,
  {
    readonly kind: Kind
    /** An empty, migrated database (a new one each time the layer is built). */
    readonly fresh: Layer.Layer<SqlClient.SqlClient>
    /** The URL of an empty PostgreSQL database, not migrated (none on SQLite). */
    readonly freshUrl: Effect.Effect<string>
  }
>() {}

/**
 * An empty, migrated database for one test, and fresh test services (a TestClock at 0), as `it.effect` gives each
 * test outside a `layer(...)` block: the suite's tests would otherwise share the block's TestClock.
 */
export const freshStore: Layer.Layer<SqlClient.SqlClient, never, StoreUnderTest> = Layer.merge(
  Layer.unwrapEffect(Effect.map(StoreUnderTest, (store) => store.fresh)),
  TestContext.TestContext
)

/** Which database the running suite uses. */
export const kind: Effect.Effect<Kind, never, StoreUnderTest> = Effect.map(StoreUnderTest, (s) => s.kind)

const sqlite = Layer.succeed(StoreUnderTest, {
  kind: "sqlite",
  fresh: Layer.orDie(Store.layerMemory),
  freshUrl: Effect.dieMessage("no database URL on SQLite")
})

const migrated = (url: string) => Store.layerPg({ url: Redacted.make(url) })

/** A database migrated once, copied for every test (CREATE DATABASE ... TEMPLATE: no migrations per test). */
const template = Effect.gen(function* () {
  const server = yield* Postgres
  const url = yield* server.createDatabase()
  yield* Effect.scoped(Layer.build(migrated(url)))
  return url.slice(url.lastIndexOf("/") + 1)
}).pipe(Effect.orDie)

const postgres = Layer.effect(
  StoreUnderTest,
  Effect.gen(function* () {
    const server = yield* Postgres
    const name = yield* template
    return {
      kind: "postgres" as const,
      fresh: Layer.orDie(Layer.unwrapEffect(Effect.map(server.createDatabase(name), migrated))),
      freshUrl: server.createDatabase()
    }
  })
).pipe(Layer.provideMerge(Postgres.layer))

/** The title of the PostgreSQL half of a suite, saying why it is skipped when it is. */
export const postgresTitle = (name: string) =>
  postgresBinary === undefined ? `${name} on PostgreSQL (${skipReason})` : `${name} on PostgreSQL`

/** Runs `suite` on SQLite and on PostgreSQL. */
export const eachStore = (name: string, suite: (it: Vitest.MethodsNonLive<StoreUnderTest>, kind: Kind) => void) => {
  layer(sqlite)(`${name} on SQLite`, (it) => suite(it, "sqlite"))
  describe.skipIf(postgresBinary === undefined)(postgresTitle(name), () =>
    layer(postgres, { timeout: "60 seconds" })((it) => suite(it, "postgres"))
  )
}
