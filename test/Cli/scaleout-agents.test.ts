/**
 * Agent episodes across `sluice serve` instances (the built CLI, as child processes) sharing one database and one
 * simulator, on SQLite (one data directory) and on PostgreSQL (one SLUICE_DATABASE_URL):
 * - kill -9 of the instance running an episode: the other takes it over once the lease expired and the episode
 *   completes; the database holds every tick number exactly once, the ticks committed before the kill unchanged.
 *   The lease is shortened to 3 s here through its setting (SLUICE_AGENT_LEASE), the knob under test.
 * - cancel on the instance that does not run the episode stops it on the one that does (default lease).
 * - SIGTERM of the instance running an episode (a rolling restart): it hands the episode over (its lease ended at
 *   once, the episode still running) and exits 0; the other takes it over at its next scan, well before the lease
 *   (default 15 s) would have run out, and completes it with every tick once.
 * - SIGTERM then a restart of a single instance: the restarted instance's first scan continues the episode.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, type Scope } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Store from "../../src/Store/Store.js"
import { postgresBin, postgresServer } from "../support/PostgresServer.js"
import { postgresTitle } from "../support/Stores.js"
import { type Running, sluice, waitFor } from "./process.js"

const listening = /Listening on (http:\/\/[\w.:[\]]+)/

/** A database both instances share: the environment that selects it, and a client for the test's assertions. */
interface Shared {
  readonly env: Record<string, string>
  readonly sql: Effect.Effect<SqlClient.SqlClient, never, Scope.Scope>
}

const clientOf = <E>(layer: Layer.Layer<SqlClient.SqlClient, E>) =>
  Effect.map(Layer.build(Layer.orDie(layer)), (context) => Context.get(context, SqlClient.SqlClient))

const sqlite = Effect.sync((): Shared => {
  const dataDir = mkdtempSync(join(tmpdir(), "sluice-scaleout-"))
  return { env: { SLUICE_DATA_DIR: dataDir }, sql: clientOf(Store.layerSqlite({ dataDir })) }
})

const postgres = Effect.gen(function* () {
  const url = yield* (yield* postgresServer).createDatabase()
  return { env: { SLUICE_DATABASE_URL: url }, sql: clientOf(PgClient.layer({ url: Redacted.make(url) })) } as Shared
})

const json = (url: string, init: RequestInit = {}) =>
  Effect.promise(() =>
    fetch(url, init).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> }))
  )

/** Polls `get` every 200 ms until `ok` (at most `seconds`). */
const until = <A>(get: Effect.Effect<A>, ok: (a: A) => boolean, what: string, seconds = 90) =>
  Effect.gen(function* () {
    while (true) {
      const value = yield* get
      if (ok(value)) return value
      yield* Effect.sleep("200 millis")
    }
  }).pipe(
    Effect.timeoutFail({ duration: `${seconds} seconds`, onTimeout: () => new Error(`timed out: ${what}`) }),
    Effect.orDie
  )

/** Two instances over `shared` and one simulator; B starts once A has migrated the database. */
const instances = (shared: Shared, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const sim = yield* sluice(["simulate", "--port", "0"])
    const backend = yield* waitFor(sim, /simulator on (http:\/\/[\w.:]+)/)
    const serve = () => sluice(["serve", "--port", "0", "--ollama", backend], { ...shared.env, ...env })
    const a = yield* serve()
    const urlA = yield* waitFor(a, listening)
    const b = yield* serve()
    const urlB = yield* waitFor(b, listening)
    return { a, urlA, b, urlB }
  })

const start = (url: string, spec: Record<string, unknown>, goal: string) =>
  Effect.map(
    json(`${url}/agents/episodes`, { method: "POST", body: JSON.stringify({ spec, goal }) }),
    (r) => r.body.id as string
  )

const show = (url: string, id: string) => Effect.map(json(`${url}/agents/episodes/${id}`), (r) => r.body)

const ownedBy = (running: Running) => new RegExp(`:${running.child.pid}:[0-9a-f]+$`)

const walker = { name: "walker", model: "llama3.2", tools: ["remember"], maxTicks: 8, memory: { recallK: 0 } }

/** The number of ticks `running` says it committed before handing `id` over (its log line). */
const handedOverAfter = (running: Running, id: string) => {
  const found = new RegExp(`episode ${id}: handed over after tick (\\d+)`).exec(running.stdout())
  assert.isNotNull(found, `the handover is logged: ${running.stdout()}`)
  return Number(found![1])
}

/** Every tick of `id` stored once, 1 to `ticks`, and the episode completed. */
const everyTickOnce = (shared: Shared, id: string, ticks: number) =>
  Effect.gen(function* () {
    const sql = yield* shared.sql
    const counts = yield* sql<{ n: number; copies: number | string }>`SELECT n, COUNT(*) AS copies FROM ticks
      WHERE episode_id = ${id} GROUP BY n ORDER BY n`.pipe(Effect.orDie)
    assert.deepStrictEqual(
      counts.map((row) => [Number(row.n), Number(row.copies)]),
      Array.from({ length: ticks }, (_, i) => [i + 1, 1]),
      "every tick once: none run twice, none lost"
    )
    const [episode] = yield* sql<{ status: string; ticks: number }>`SELECT status, ticks FROM episodes
      WHERE id = ${id}`.pipe(Effect.orDie)
    assert.deepStrictEqual({ status: episode!.status, ticks: Number(episode!.ticks) }, { status: "completed", ticks })
  })

const takeover = (database: Effect.Effect<Shared, never, Scope.Scope>) =>
  Effect.gen(function* () {
    const shared = yield* database
    const { a, b, urlA, urlB } = yield* instances(shared, { SLUICE_AGENT_LEASE: "3 seconds" })
    const id = yield* start(urlA, { ...walker, tickInterval: "300 millis" }, "remember each tick")
    const before = yield* until(show(urlB, id), (e) => e.ticks.length >= 2, "two ticks on A, read through B")
    assert.strictEqual(before.status, "running")
    assert.match(before.lease.owner, ownedBy(a), "A runs it")
    a.child.kill("SIGKILL")
    yield* Effect.promise(() => a.exited)

    const after = yield* until(show(urlB, id), (e) => e.status !== "running", "the episode ends on B")
    assert.strictEqual(after.status, "completed", JSON.stringify(after))
    yield* everyTickOnce(shared, id, 8)
    const kept = after.ticks.slice(0, before.ticks.length).map((t: { startedAt: number }) => t.startedAt)
    assert.deepStrictEqual(
      kept,
      before.ticks.map((t: { startedAt: number }) => t.startedAt),
      "not run again"
    )
    const metrics = yield* Effect.promise(() => fetch(`${urlB}/metrics`).then((r) => r.text()))
    assert.match(metrics, /^sluice_agent_episode_takeovers_total 1$/m)
    assert.isNull(b.child.exitCode)
  })

const handOver = (database: Effect.Effect<Shared, never, Scope.Scope>) =>
  Effect.gen(function* () {
    const shared = yield* database
    const { a, b, urlA, urlB } = yield* instances(shared)
    const id = yield* start(urlA, { ...walker, tickInterval: "300 millis" }, "remember each tick")
    const before = yield* until(show(urlB, id), (e) => e.ticks.length >= 2, "two ticks on A, read through B")
    assert.match(before.lease.owner, ownedBy(a), "A runs it")
    a.child.kill("SIGTERM")
    assert.strictEqual(yield* Effect.promise(() => a.exited), 0, "A exits cleanly")
    const exitedAt = Date.now()
    const committedByA = handedOverAfter(a, id)
    assert.isAtLeast(committedByA, 2)

    const after = yield* until(show(urlB, id), (e) => e.status !== "running", "the episode ends on B")
    assert.strictEqual(after.status, "completed", JSON.stringify(after))
    yield* everyTickOnce(shared, id, 8)
    // A renewed its lease before every tick (300 ms apart): run out, it would have lasted until about 15 s after
    // the exit; B's scan (every 7.5 s) found it ended at once
    const firstOnB = after.ticks.find((t: { n: number }) => t.n === committedByA + 1)
    assert.isBelow(firstOnB.startedAt - exitedAt, 12_000, "taken over without waiting for the lease to run out")
    const metrics = yield* Effect.promise(() => fetch(`${urlB}/metrics`).then((r) => r.text()))
    assert.match(metrics, /^sluice_agent_episode_takeovers_total 1$/m)
    assert.isNull(b.child.exitCode)
  })

const restart = Effect.gen(function* () {
  const shared = yield* sqlite
  const sim = yield* sluice(["simulate", "--port", "0"])
  const backend = yield* waitFor(sim, /simulator on (http:\/\/[\w.:]+)/)
  const serve = () => sluice(["serve", "--port", "0", "--ollama", backend], shared.env)
  const first = yield* serve()
  const url = yield* waitFor(first, listening)
  const id = yield* start(url, { ...walker, tickInterval: "300 millis" }, "remember each tick")
  yield* until(show(url, id), (e) => e.ticks.length >= 2, "two ticks")
  first.child.kill("SIGTERM")
  assert.strictEqual(yield* Effect.promise(() => first.exited), 0)
  const committed = handedOverAfter(first, id)
  const sql = yield* shared.sql
  const [lease] = yield* sql<{ expires_at: number; fence: number }>`SELECT expires_at, fence FROM episode_leases
    WHERE episode_id = ${id}`.pipe(Effect.orDie)
  assert.deepStrictEqual({ ...lease }, { expires_at: 0, fence: 1 }, "handed over: ended at once, kept")
  const [stopped] = yield* sql<{ status: string; ticks: number }>`SELECT status, ticks FROM episodes
    WHERE id = ${id}`.pipe(Effect.orDie)
  assert.deepStrictEqual({ ...stopped }, { status: "running", ticks: committed }, "still running, not interrupted")

  const second = yield* serve()
  const again = yield* waitFor(second, listening)
  const after = yield* until(show(again, id), (e) => e.status !== "running", "the restarted instance completes it")
  assert.strictEqual(after.status, "completed", JSON.stringify(after))
  yield* everyTickOnce(shared, id, 8)
})

const cancelElsewhere = (database: Effect.Effect<Shared, never, Scope.Scope>) =>
  Effect.gen(function* () {
    const { a, urlA, urlB } = yield* instances(yield* database)
    const id = yield* start(urlA, { ...walker, tickInterval: "30 seconds" }, "remember each tick")
    yield* until(show(urlB, id), (e) => e.ticks.length >= 1, "tick 1 on A")
    const cancelled = yield* json(`${urlB}/agents/episodes/${id}/cancel`, { method: "POST" })
    assert.deepStrictEqual(cancelled, { status: 202, body: { id, status: "interrupted" } })
    const onA = yield* show(urlA, id)
    assert.strictEqual(onA.status, "interrupted")
    assert.strictEqual(onA.ticks.length, 1)
    assert.isUndefined(onA.lease, "its lease was released with the ending")
    assert.isNull(a.child.exitCode, "A still serves")
    const again = yield* json(`${urlB}/agents/episodes/${id}/cancel`, { method: "POST" })
    assert.strictEqual(again.status, 409)
  })

describe("sluice serve instances sharing an SQLite database", () => {
  it.scopedLive(
    "kill -9 of the instance running an episode: the other takes it over, every tick once",
    () => takeover(sqlite),
    180_000
  )
  it.scopedLive("cancel on the instance that does not run the episode stops it", () => cancelElsewhere(sqlite), 120_000)
  it.scopedLive(
    "SIGTERM of the instance running an episode hands it over: the other continues it at its next scan",
    () => handOver(sqlite),
    120_000
  )
  it.scopedLive("SIGTERM then a restart of a single instance: the episode continues by itself", () => restart, 120_000)
})

describe.skipIf(postgresBin === undefined)(postgresTitle("sluice serve instances sharing a database"), () => {
  it.scopedLive(
    "kill -9 of the instance running an episode: the other takes it over, every tick once",
    () => takeover(postgres),
    180_000
  )
  it.scopedLive(
    "cancel on the instance that does not run the episode stops it",
    () => cancelElsewhere(postgres),
    120_000
  )
  it.scopedLive(
    "SIGTERM of the instance running an episode hands it over: the other continues it at its next scan",
    () => handOver(postgres),
    120_000
  )
})
