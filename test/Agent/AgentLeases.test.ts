/**
 * The agent runtime under episode leases, on the simulator: a runner whose lease was taken over stops at once
 * and leaves the episode running for the new owner, which continues after the last committed tick (every tick
 * stored once); a cancel asked through the lease ends the episode "interrupted" before its next tick; resume
 * refuses an episode another instance holds; a handover (serve's shutdown) lets the tick in flight commit, or,
 * interrupted at its deadline, drops it, and in both cases leaves the episode running with its lease ended at
 * once, for a takeover that completes it with every tick once.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Layer, Option, Schema } from "effect"
import { Agent } from "../../src/Agent/Agent.js"
import * as AgentSpec from "../../src/Agent/AgentSpec.js"
import { EpisodeLeases } from "../../src/Agent/EpisodeLeases.js"
import { Episodes } from "../../src/Agent/Episodes.js"
import * as Tools from "../../src/Agent/Tools.js"
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
const layer = (tools: ReadonlyArray<Tools.Tool> = []) => LeasesRepo.Default.pipe(Layer.provideMerge(runtime(tools)))

/** A tool whose first call says it started and waits for `gate`; later calls answer at once. */
const stall = (started: Deferred.Deferred<void>, gate: Effect.Effect<void>) => {
  let calls = 0
  return Tools.make({
    name: "stall",
    description: "Wait for a signal.",
    parameters: Schema.Struct({ what: Schema.String }),
    run: () => (++calls === 1 ? Effect.zipRight(Deferred.succeed(started, undefined), gate) : Effect.void)
  })
}

const staller = AgentSpec.make({
  name: "staller",
  model: "llama3.2",
  tools: ["stall"],
  maxTicks: 3,
  maxSteps: 2,
  memory: { recallK: 0, remember: false }
})

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

  it.scopedLive("a handover lets the tick in flight commit; the episode stays running, its lease ended at once", () =>
    Effect.gen(function* () {
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const handOver = yield* Deferred.make<void>()
      yield* Effect.gen(function* () {
        const agent = yield* Agent
        const running = yield* Effect.fork(agent.run(staller, "stall for the signal", { handOver }))
        yield* Deferred.await(started)
        yield* Deferred.succeed(handOver, undefined)
        yield* Deferred.succeed(gate, undefined)
        const left = yield* Fiber.join(running)
        assert.deepInclude(left, { status: "running", ticks: 1 }, "tick 1 finished and committed, then it stopped")
        const lease = Option.getOrThrow(yield* (yield* LeasesRepo).get(left.id))
        assert.deepInclude(lease, { expiresAt: 0, fence: 1 }, "ended at once, kept for the takeover")

        const ended = yield* agent.takeOver(left.id)
        assert.strictEqual(ended.status, "completed")
        assert.deepStrictEqual(yield* ticksOf(left.id), [1, 2, 3])
      }).pipe(Effect.provide(layer([stall(started, Deferred.await(gate))])))
    })
  )

  it.scopedLive("interrupted after the handover was asked (its deadline), the tick in flight is run again later", () =>
    Effect.gen(function* () {
      const started = yield* Deferred.make<void>()
      const handOver = yield* Deferred.make<void>()
      yield* Effect.gen(function* () {
        const agent = yield* Agent
        const episodes = yield* Episodes
        const running = yield* Effect.fork(agent.run(staller, "stall for the signal", { handOver }))
        yield* Deferred.await(started)
        yield* Deferred.succeed(handOver, undefined)
        yield* Fiber.interrupt(running)
        const [left] = yield* episodes.list({ agent: "staller" })
        assert.deepInclude(left, { status: "running", ticks: 0 }, "handed over, not marked interrupted")
        const lease = Option.getOrThrow(yield* (yield* LeasesRepo).get(left!.id))
        assert.strictEqual(lease.expiresAt, 0)

        const ended = yield* agent.takeOver(left!.id)
        assert.strictEqual(ended.status, "completed")
        assert.deepStrictEqual(yield* ticksOf(left!.id), [1, 2, 3], "tick 1 run again by the next owner, once stored")
      }).pipe(Effect.provide(layer([stall(started, Effect.never)])))
    })
  )
})
