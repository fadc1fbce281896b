import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, Schema } from "effect"
import { Agent } from "../../src/Agent/Agent.js"
import * as AgentSpec from "../../src/Agent/AgentSpec.js"
import { Episodes } from "../../src/Agent/Episodes.js"
import * as Tools from "../../src/Agent/Tools.js"
import { VectorMemory } from "../../src/Agent/VectorMemory.js"
import { rows, runtime } from "./agentFixtures.js"

const spec = (fields: Partial<AgentSpec.AgentSpecEncoded> = {}) =>
  AgentSpec.make({ name: "noter", model: "llama3.2", system: "You keep notes.", ...fields })

const ticksOf = (id: string) =>
  Effect.flatMap(Episodes, (episodes) => episodes.get(id)).pipe(
    Effect.map((found) => Option.getOrThrow(found).ticks),
    Effect.orDie
  )

describe("Agent", () => {
  it.scopedLive("runs an episode to finish: ticks, tool calls and memories are stored", () =>
    Effect.gen(function* () {
      const agent = yield* Agent
      const noter = spec({ tools: ["remember", "finish"], maxTicks: 3 })
      const episode = yield* agent.run(noter, "remember that the launch is on friday")
      assert.strictEqual(episode.status, "completed")
      assert.strictEqual(episode.result, "friday")
      assert.strictEqual(episode.ticks, 3)

      const ticks = yield* ticksOf(episode.id)
      assert.deepStrictEqual(
        ticks.map((t) => [t.n, t.outcome, t.toolCalls.map((c) => c.name)]),
        [
          [1, "ok", ["remember"]],
          [2, "ok", ["remember"]],
          [3, "ok", ["finish"]]
        ]
      )
      assert.deepStrictEqual(ticks[0]!.toolCalls[0]!.arguments, { text: "friday" })
      assert.match(ticks[0]!.messages.find((m) => m.role === "user")!.content, /^Tick 1 of 3\.\nNo new messages\./)
      assert.isAbove(episode.tokens, 0)
      assert.isAbove(ticks[1]!.recalled.length, 0, "tick 2 recalls what tick 1 stored")

      const stored = yield* rows("SELECT text FROM memories WHERE agent = 'noter'")
      assert.includeMembers(
        stored.map((r) => r.text),
        ["friday"]
      )
      assert.isAbove(stored.length, 1, "the replies are remembered too")
      const stats = yield* Effect.flatMap(VectorMemory, (m) => m.stats)
      assert.strictEqual(stats[0]?.namespace, "noter")
      const [row] = yield* rows(`SELECT COUNT(*) AS n FROM ticks WHERE episode_id = '${episode.id}'`)
      assert.strictEqual(Number(row!.n), 3)
    }).pipe(Effect.provide(runtime()))
  )

  it.scopedLive("a tick over budget is recorded as budget-exceeded and the episode continues", () =>
    Effect.gen(function* () {
      const agent = yield* Agent
      // each tick needs two chats (the tool call, then the answer); one call is allowed
      const tight = spec({ tools: ["publish"], maxTicks: 3, budget: { calls: 1 }, memory: { recallK: 0 } })
      const episode = yield* agent.run(tight, "publish the budget")
      const ticks = yield* ticksOf(episode.id)
      assert.deepStrictEqual(
        ticks.map((t) => t.outcome),
        ["budget-exceeded", "budget-exceeded", "ok"]
      )
      assert.match(ticks[0]!.error!, /^BudgetExceeded: /)
      assert.deepStrictEqual(ticks[0]!.budget, { ...ticks[0]!.budget!, calls: 1 })
      assert.deepStrictEqual(
        ticks[0]!.toolCalls.map((c) => c.name),
        ["publish"]
      )
      assert.strictEqual(episode.status, "completed", "the last tick finishes in one chat")
    }).pipe(Effect.provide(runtime()))
  )

  it.scopedLive('with onBudgetExceeded "end", a tick over budget ends the episode as failed', () =>
    Effect.gen(function* () {
      const agent = yield* Agent
      const tight = spec({ tools: ["publish"], budget: { calls: 1 }, onBudgetExceeded: "end" })
      const episode = yield* agent.run(tight, "publish the budget")
      assert.strictEqual(episode.status, "failed")
      assert.strictEqual(episode.ticks, 1)
      assert.match(episode.error!, /tick 1 went over its budget/)
      const [tick] = yield* ticksOf(episode.id)
      assert.strictEqual(tick!.outcome, "budget-exceeded")
    }).pipe(Effect.provide(runtime()))
  )

  const lookup = Tools.make({
    name: "lookup",
    description: "Look up an order by its number.",
    parameters: Schema.Struct({ order: Schema.String.pipe(Schema.pattern(/^\d+$/)) }),
    run: ({ order }) => Effect.succeed({ order, state: "shipped" })
  })

  it.scopedLive("a tool call with bad arguments becomes an error message to the model; the tick goes on", () =>
    Effect.gen(function* () {
      const agent = yield* Agent
      const clerk = spec({ name: "clerk", tools: ["lookup"], maxTicks: 2, memory: { recallK: 0, remember: false } })
      const episode = yield* agent.run(clerk, "lookup the order called banana")
      const [first] = yield* ticksOf(episode.id)
      assert.strictEqual(first!.outcome, "ok")
      assert.deepStrictEqual(first!.toolCalls[0]!.arguments, { order: "banana" })
      assert.match(first!.toolCalls[0]!.error!, /invalid arguments/)
      const toolMessage = first!.messages.find((m) => m.role === "tool")!
      assert.strictEqual(toolMessage.tool_name, "lookup")
      assert.match(toolMessage.content, /^error: lookup: invalid arguments: .*order/s)
      assert.strictEqual(first!.messages[first!.messages.length - 1]!.role, "assistant", "the model answered")
      assert.strictEqual(episode.status, "completed")
    }).pipe(Effect.provide(runtime([lookup])))
  )

  it.scopedLive("two agents exchange messages over the bus", () =>
    Effect.gen(function* () {
      const agent = yield* Agent
      const pair = (name: string) =>
        spec({ name, tools: ["publish"], maxTicks: 4, tickInterval: "100 millis", memory: { recallK: 0 } })
      const [a, b] = yield* agent.runAll([
        { spec: pair("ann"), goal: "publish a greeting to bob" },
        { spec: pair("bob"), goal: "publish a reply to ann" }
      ])
      assert.strictEqual(a!.status, "completed")
      assert.strictEqual(b!.status, "completed")
      const received = (id: string) =>
        Effect.map(ticksOf(id), (ticks) => ticks.flatMap((t) => t.inputs as ReadonlyArray<{ from: string }>))
      const byAnn = yield* received(a!.id)
      const byBob = yield* received(b!.id)
      assert.isAbove(byBob.length, 0)
      assert.isTrue(byBob.every((m) => m.from === "ann"))
      assert.isAbove(byAnn.length, 0)
      assert.isTrue(byAnn.every((m) => m.from === "bob"))
      const [second] = (yield* ticksOf(b!.id)).slice(1)
      assert.include(second!.messages.find((m) => m.role === "user")!.content, "- from ann: bob")
    }).pipe(Effect.provide(runtime()))
  )

  it.scopedLive("an unknown tool becomes an error message too", () =>
    Effect.gen(function* () {
      const registry = yield* Tools.ToolRegistry
      const context: Tools.ToolContext = {
        agent: "a",
        episodeId: "e",
        tick: 1,
        memory: { namespace: "a", recallK: 3, embeddingModel: undefined },
        finish: () => Effect.die("not called")
      }
      const outcome = yield* Tools.call(registry, ["finish"], { function: { name: "rm", arguments: {} } }, context)
      assert.strictEqual(outcome.message.role, "tool")
      assert.strictEqual(outcome.message.content, "error: rm: unknown tool; the tools are: finish")
      assert.strictEqual(outcome.record.error, "unknown tool; the tools are: finish")
    }).pipe(Effect.provide(runtime()))
  )

  it.scopedLive("an interrupted run marks the episode interrupted; resume continues after the last tick", () =>
    Effect.gen(function* () {
      const agent = yield* Agent
      const episodes = yield* Episodes
      const slow = spec({ tools: ["remember"], tickInterval: "300 millis", maxTicks: 4 })
      const fiber = yield* Effect.fork(agent.run(slow, "remember the pauses"))
      const ids = yield* Effect.repeat(
        Effect.map(episodes.list({ agent: "noter" }), (list) => list.filter((e) => e.ticks >= 1)).pipe(
          Effect.delay("20 millis")
        ),
        { until: (list) => list.length > 0 }
      )
      yield* Fiber.interrupt(fiber)
      const stopped = Option.getOrThrow(yield* episodes.get(ids[0]!.id)).episode
      assert.strictEqual(stopped.status, "interrupted")
      const ended = yield* agent.resume(stopped.id)
      assert.strictEqual(ended.status, "completed")
      assert.deepStrictEqual(
        (yield* ticksOf(stopped.id)).map((t) => t.n),
        [1, 2, 3, 4]
      )
    }).pipe(Effect.provide(runtime()))
  )

  it.effect("a spec file with a misspelt field fails to decode with a clear reason", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        AgentSpec.decodeJson(JSON.stringify({ name: "x", model: "m", maxTick: 3, tickInterval: "soon" }), "x.json")
      )
      assert.strictEqual(error._tag, "SpecError")
      assert.match(error.message, /^invalid agent spec x\.json: /)
      assert.include(error.message, "maxTick")
      assert.include(error.message, 'not a duration: "soon"')
      const defaults = AgentSpec.make({ name: "x", model: "m" })
      assert.deepInclude(defaults, { tickInterval: "0 millis", maxTicks: 10, onBudgetExceeded: "continue" })
      assert.deepStrictEqual(AgentSpec.encode(defaults).memory, { recallK: 3, remember: true })
    })
  )
})
