import { assert, describe, layer } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { Episodes } from "../../src/Agent/Episodes.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import { call, layer as gateway, layerWithAgents } from "./gateway.js"

const noter = { name: "noter", model: "llama3.2", tools: ["remember"], maxTicks: 2, memory: { recallK: 0 } }
const goal = "remember that the launch is on friday"

const start = (spec: unknown, goalText: string | undefined = goal) =>
  call("/agents/episodes", { method: "POST", body: goalText === undefined ? { spec } : { spec, goal: goalText } })

/** Polls the episode until it is no longer running. */
const ended = (id: string) =>
  call(`/agents/episodes/${id}`).pipe(
    Effect.filterOrFail((a) => a.body.status !== "running"),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds")))
  )

describe("gateway: agents", () => {
  layer(layerWithAgents(fast()), { excludeTestServices: true })("with the agent runtime", (it) => {
    it.effect("starts an episode in the background; it completes and shows its ticks", () =>
      Effect.gen(function* () {
        const started = yield* start(noter)
        assert.strictEqual(started.status, 202)
        assert.strictEqual(started.body.status, "running")
        const episode = yield* ended(started.body.id)
        assert.strictEqual(episode.status, 200)
        assert.deepInclude(episode.body, { id: started.body.id, agent: "noter", goal, status: "completed" })
        assert.isAbove(episode.body.ticks.length, 0)
        assert.strictEqual(episode.body.ticks.length, episode.body.ticks.at(-1).n)
        assert.strictEqual(episode.body.ticks[0].episodeId, started.body.id)
      })
    )

    it.effect("lists episodes, filtered by agent and status", () =>
      Effect.gen(function* () {
        const other = yield* start({ ...noter, name: "clerk" })
        yield* ended(other.body.id)
        const clerks = yield* call("/agents/episodes?agent=clerk&limit=10")
        assert.strictEqual(clerks.status, 200)
        assert.deepStrictEqual(
          clerks.body.episodes.map((e: { id: string }) => e.id),
          [other.body.id]
        )
        const noters = yield* call("/agents/episodes?agent=noter&status=completed")
        assert.isTrue(noters.body.episodes.every((e: { agent: string }) => e.agent === "noter"))
        assert.strictEqual((yield* call("/agents/episodes?status=sleeping")).status, 400)
        assert.strictEqual((yield* call("/agents/episodes?limit=0")).status, 400)
      })
    )

    it.effect("cancel interrupts a running episode; a second cancel is refused with 409", () =>
      Effect.gen(function* () {
        const slow = { ...noter, name: "sleeper", tickInterval: "30 seconds", maxTicks: 4 }
        const started = yield* start(slow)
        assert.strictEqual(started.status, 202)
        const cancelled = yield* call(`/agents/episodes/${started.body.id}/cancel`, { method: "POST" })
        assert.strictEqual(cancelled.status, 202)
        assert.deepStrictEqual(cancelled.body, { id: started.body.id, status: "interrupted" })
        const shown = yield* call(`/agents/episodes/${started.body.id}`)
        assert.strictEqual(shown.body.status, "interrupted")
        const again = yield* call(`/agents/episodes/${started.body.id}/cancel`, { method: "POST" })
        assert.strictEqual(again.status, 409)
      })
    )

    it.effect("cancel of an episode whose instance died (its lease expired) ends it here at once", () =>
      Effect.gen(function* () {
        const episodes = yield* Episodes
        const id = "orphan"
        const dead = { holder: { episodeId: id, owner: "gone:1:abcdef", fence: 1 }, ttlMs: -1 }
        yield* episodes.start({ id, agent: "noter", goal, spec: { ...noter, tickInterval: "30 seconds" } }, dead)
        const shown = yield* call(`/agents/episodes/${id}`)
        assert.strictEqual(shown.body.lease.owner, "gone:1:abcdef")
        const cancelled = yield* call(`/agents/episodes/${id}/cancel`, { method: "POST" })
        assert.deepStrictEqual(
          { status: cancelled.status, body: cancelled.body },
          {
            status: 202,
            body: { id, status: "interrupted" }
          }
        )
        const after = yield* call(`/agents/episodes/${id}`)
        assert.strictEqual(after.body.status, "interrupted")
        assert.isUndefined(after.body.lease)
      })
    )

    it.effect("unknown ids answer 404; an invalid spec or a missing goal answers 400", () =>
      Effect.gen(function* () {
        const missing = yield* call("/agents/episodes/nope")
        assert.strictEqual(missing.status, 404)
        assert.match(missing.body.error, /not found/)
        assert.strictEqual((yield* call("/agents/episodes/nope/cancel", { method: "POST" })).status, 404)
        const misspelt = yield* start({ ...noter, maxTick: 3 })
        assert.strictEqual(misspelt.status, 400)
        assert.match(misspelt.body.error, /invalid agent spec/)
        const unknownTool = yield* start({ ...noter, tools: ["teleport"] })
        assert.strictEqual(unknownTool.status, 400)
        assert.match(unknownTool.body.error, /unknown tool/)
        const goalless = yield* call("/agents/episodes", { method: "POST", body: { spec: noter } })
        assert.strictEqual(goalless.status, 400)
        assert.match(goalless.body.error, /no goal/)
        assert.strictEqual((yield* call("/agents/episodes", { method: "POST", body: { goal } })).status, 400)
      })
    )
  })

  layer(gateway(fast()), { excludeTestServices: true })("without the agent runtime", (it) => {
    it.effect("every agent route answers 503", () =>
      Effect.gen(function* () {
        for (const [method, path] of [
          ["POST", "/agents/episodes"],
          ["GET", "/agents/episodes"],
          ["GET", "/agents/episodes/x"],
          ["POST", "/agents/episodes/x/cancel"]
        ] as const) {
          const answer = yield* call(path, { method, ...(method === "POST" ? { body: { spec: noter } } : {}) })
          assert.strictEqual(answer.status, 503, path)
          assert.deepStrictEqual(answer.body, { error: "agents are not enabled" })
        }
      })
    )
  })
})
