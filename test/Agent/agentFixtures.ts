/**
 * Test fixtures for the agent runtime: the runtime over the simulator (zero latency) and an in-memory database,
 * and a table reader for assertions on what was stored.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import * as Agent from "../../src/Agent/Agent.js"
import type { Tool } from "../../src/Agent/Tools.js"
import * as Engine from "../../src/Llm/Engine.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import * as Store from "../../src/Store/Store.js"

const engine = Layer.unwrapEffect(
  Effect.map(Simulator, (sim) =>
    Engine.layer({ backends: [{ url: sim.url }], retry: { base: "1 millis", maxDelay: "20 millis", jitter: false } })
  )
).pipe(Layer.provide(Simulator.layerTest(fast())))

/** Agent (+ Episodes, VectorMemory, EventBus, ToolRegistry, Llm, SqlClient) over a fresh simulator and database. */
export const runtime = (tools: ReadonlyArray<Tool> = []) =>
  Agent.layer({ tools, memory: { model: "nomic-embed-text" } }).pipe(
    Layer.provideMerge(Layer.merge(Store.layerMemory, engine))
  )

/** Rows of a SQL query, for assertions on the tables themselves. */
export const rows = (query: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<Record<string, unknown>>(query)).pipe(Effect.orDie)
