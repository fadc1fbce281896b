import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { statements } from "../../src/Store/EpisodesRepo.js"
import * as Store from "../../src/Store/Store.js"

/** The plan of a repository statement, one detail line per step. */
const planOf = (statement: { readonly compile: () => readonly [string, ReadonlyArray<unknown>] }) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [text, params] = statement.compile()
    const rows = yield* sql.unsafe<{ detail: string }>(`EXPLAIN QUERY PLAN ${text}`, params)
    return rows.map((r) => r.detail)
  })

const usesIndex = (plan: ReadonlyArray<string>, table: string, index: string) =>
  assert.isTrue(
    plan.some((step) => step.startsWith(`SEARCH ${table} USING `) && step.includes(index)),
    `expected SEARCH ${table} USING ... ${index}, got:\n${plan.join("\n")}`
  )

describe("episode queries use indexes (EXPLAIN QUERY PLAN)", () => {
  it.effect("episodes by agent and status (and time), by agent, by status, by id; ticks by episode", () =>
    Effect.gen(function* () {
      const q = statements(yield* SqlClient.SqlClient)
      const byAgentStatus = "episodes_agent_status_created"
      usesIndex(yield* planOf(q.list({ agent: "a", status: "running" })), "episodes", byAgentStatus)
      usesIndex(
        yield* planOf(q.list({ agent: "a", status: "completed", since: 1, until: 9 })),
        "episodes",
        byAgentStatus
      )
      usesIndex(yield* planOf(q.list({ agent: "a" })), "episodes", byAgentStatus)
      usesIndex(yield* planOf(q.list({ status: "failed" })), "episodes", "episodes_status_updated")
      usesIndex(yield* planOf(q.episode("e")), "episodes", "sqlite_autoindex_episodes_1 (id=?)")
      usesIndex(yield* planOf(q.ticks("e")), "ticks", "sqlite_autoindex_ticks_1 (episode_id=?)")
      usesIndex(yield* planOf(q.lastTick("e")), "ticks", "sqlite_autoindex_ticks_1 (episode_id=?)")
      usesIndex(yield* planOf(q.entries("a", 10)), "archive_index", "archive_index_agent_archived")
    }).pipe(Effect.provide(Store.layerMemory))
  )

  it.effect("listing by time alone walks the created_at index instead of sorting the table", () =>
    Effect.gen(function* () {
      const q = statements(yield* SqlClient.SqlClient)
      const plan = yield* planOf(q.list({ since: 1 }))
      usesIndex(plan, "episodes", "episodes_created")
      assert.isFalse(
        plan.some((step) => step.includes("TEMP B-TREE")),
        plan.join("\n")
      )
      const all = yield* planOf(q.list({}))
      assert.isTrue(
        all.some((step) => step.includes("episodes_created")),
        all.join("\n")
      )
    }).pipe(Effect.provide(Store.layerMemory))
  )

  it.effect("the archive sweep's candidate query reads ended episodes through the status index", () =>
    Effect.gen(function* () {
      const q = statements(yield* SqlClient.SqlClient)
      const plan = yield* planOf(q.due({ before: 1_000, keepPerAgent: 5, limit: 100 }))
      usesIndex(plan, "episodes", "episodes_status_updated")
    }).pipe(Effect.provide(Store.layerMemory))
  )
})
