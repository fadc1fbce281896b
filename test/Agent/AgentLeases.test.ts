/**
 * The agent runtime under episode leases, on the simulator: a runner whose lease was taken over stops at once
 * and leaves the episode running for the new owner, which continues after the last committed tick (every tick
 * stored once); a cancel asked through the lease ends the episode "interrupted" before its next tick; resume
 * refuses an episode another instance holds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, Option } from "effect"
import { Agent } from "../../src/Agent/Agent.js"
import * as AgentSpec from "../../src/Agent/AgentSpec.js"
import { EpisodeLeases } from "../../src/Agent/EpisodeLeases.js"
import { Episodes } from "../../src/Agent/Episodes.js"
import { LeasesRepo } from "../../src/Store/LeasesRepo.js"
import { rows, runtime } from "./agentFixtures.js"

const slow = AgentSpec.make({
  name: "noter",
  model: "llama3.2",
  tools: ["remember"],
  tickInterval: "200 millis",
  maxTicks: 6,
  memory: { recallK: 0 }
})

/** The episode once `ticks` of it are committed. */
const after = (ticks: number) =>
  Effect.flatMap(Episodes, (episodes) => episodes.list({ agent: "noter" })).pipe(
    Effect.map((list) => list.find((e) => e.ticks >= ticks)),
    Effect.delay("20 millis"),
    Effect.repeat({ until: (found) => found !== undefined }),
    Effect.map((found) => found!)
  )

const ticksOf = (id: string) =>
  Effect.map(rows(`SELECT n FROM ticks WHERE episode_id = '${id}' ORDER BY n`), (r) => r.map((t) => t.n))

/** Another instance takes the lease of `id` now (whatever its expiry), holding it for `ms`. */
const steal = (id: string, ms: number) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const repo = yield* LeasesRepo
    return yield* repo.takeOver({ episodeId: id, owner: "thief", now: Number.MAX_SAFE_INTEGER, expiresAt: now + ms })
  })

/** The runtime, with the leases' SQL at hand to play another instance. */
const layer = () => LeasesRepo.Default.pipe(Layer.provideMerge(runtime()))

describe("Agent under episode leases", () => {
  it.scopedLive("a runner that lost its lease stops; a takeover continues after the last committed tick", () =>
    Effect.gen(function* () {
      const agent = yield* Agent
      const episodes = yield* Episodes
      const running = yield* Effect.fork(agent.run(slow, "remember each tick"))
      const { id } = yield* after(2)
      assert.isTrue(Option.isSome(yield* steal(id, 300)))
      const lost = yield* Effect.flip(Fiber.join(running))
      assert.deepInclude(lost, { _tag: "LeaseLost", id })
      const left = Option.getOrThrow(yield* episodes.episode(id))
      assert.strictEqual(left.status, "running", "left running for the new owner, not marked interrupted")

      assert.strictEqual((yield* Effect.flip(agent.takeOver(id)))._tag, "NotTakenOver", "the thief's lease holds")
      yield* Effect.sleep("400 millis")
      const ended = yield* agent.takeOver(id)
      assert.strictEqual(ended.status, "completed")
      assert.deepStrictEqual(yield* ticksOf(id), [1, 2, 3, 4, 5, 6])
      assert.isTrue(Option.isNone(yield* (yield* LeasesRepo).get(id)), "released with the ending")
    }).pipe(Effect.provide(layer()))
  )

  it.scopedLive("a cancel asked through the lease ends the episode interrupted before its next tick", () =>
    Effect.gen(function* () {
      const agent = yield* Agent
      const leases = yield* EpisodeLeases
      const running = yield* Effect.fork(agent.run(slow, "remember each tick"))
      const { id } = yield* after(1)
      yield* leases.requestCancel(id)
      const ended = yield* Fiber.join(running)
      assert.strictEqual(ended.status, "interrupted")
      assert.isBelow(ended.ticks, 6)
      assert.isTrue(Option.isNone(yield* leases.get(id)))
      const resumed = yield* agent.resume(id)
      assert.strictEqual(resumed.status, "completed", "an interrupted episode resumes without the old cancel")
    }).pipe(Effect.provide(layer()))
  )

  it.scopedLive("resume refuses an episode whose lease another instance holds", () =>
    Effect.gen(function* () {
      const agent = yield* Agent
      const running = yield* Effect.fork(agent.run(slow, "remember each tick"))
      const { id } = yield* after(1)
      yield* Fiber.interrupt(running)
      yield* (yield* LeasesRepo).insert(id, "elsewhere", 1, (yield* Clock.currentTimeMillis) + 60_000)
      const refused = yield* Effect.flip(agent.resume(id))
      assert.deepInclude(refused, { _tag: "LeaseHeld", id, owner: "elsewhere" })
    }).pipe(Effect.provide(layer()))
  )
})
