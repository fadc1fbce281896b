/**
 * Episode leases in the runtime (Agent/EpisodeLeases.ts with Episodes' fenced writes), two instances over one
 * database (SQLite and PostgreSQL, test/support/Stores.ts), time driven by TestClock: the owner renews while it
 * ticks, another instance takes over only after the lease expired, and from then on the old owner's writes (a
 * tick, an ending) are refused whole; a handover ends the lease at once, so another instance takes over without
 * waiting for it to run out.
 */
import { assert } from "@effect/vitest"
import { Clock, Context, Effect, Fiber, Layer, Option, TestClock } from "effect"
import { EpisodeLeases } from "../../src/Agent/EpisodeLeases.js"
import { Episodes } from "../../src/Agent/Episodes.js"
import { LeasesRepo } from "../../src/Store/LeasesRepo.js"
import { eachStore, freshStore } from "../support/Stores.js"
import { rows } from "./agentFixtures.js"
import { tick } from "./episodesFixtures.js"

const database = Layer.merge(Episodes.Default, LeasesRepo.Default).pipe(Layer.provideMerge(freshStore))

/** An instance: its own EpisodeLeases (its own owner id) over the shared database. */
const instance = Effect.map(
  Layer.build(Layer.fresh(EpisodeLeases.DefaultWithoutDependencies)),
  Context.get(EpisodeLeases)
)

const start = (leases: EpisodeLeases, id: string) =>
  Effect.gen(function* () {
    const held = yield* leases.fresh(id)
    yield* (yield* Episodes).start({ id, agent: "a", goal: "g", spec: {} }, held.fenced)
    return held
  })

const ticksOf = (id: string) => rows(`SELECT n FROM ticks WHERE episode_id = '${id}' ORDER BY n`)

eachStore("EpisodeLeases", (it) => {
  it.scoped(
    "another instance takes an episode over only after its lease expired; the old owner's tick is refused",
    () =>
      Effect.gen(function* () {
        const [a, b] = [yield* instance, yield* instance]
        const t0 = yield* Clock.currentTimeMillis // the suite's tests share one TestClock
        const episodes = yield* Episodes
        assert.notStrictEqual(a.owner, b.owner)
        const heldA = yield* start(a, "ep")
        yield* episodes.commitTick(tick("ep", 1), undefined, heldA.fenced)

        const refused = yield* Effect.flip(b.acquire("ep"))
        assert.deepInclude(refused, { _tag: "LeaseHeld", owner: a.owner, expiresAt: t0 + 15_000 })
        yield* TestClock.adjust("14 seconds")
        assert.strictEqual((yield* Effect.flip(b.takeOver("ep")))._tag, "NotTakenOver")
        assert.isFalse(yield* heldA.renew, "renewed until 29 s, no cancel asked")
        yield* TestClock.adjust("14 seconds")
        assert.deepStrictEqual(yield* b.expired(), [])
        yield* TestClock.adjust("2 seconds")
        assert.deepStrictEqual(yield* b.expired(), ["ep"], "a stopped renewing: expired at 29 s")

        const heldB = yield* b.takeOver("ep")
        assert.deepStrictEqual(heldB.fenced.holder, { episodeId: "ep", owner: b.owner, fence: 2 })
        const stale = yield* Effect.flip(episodes.commitTick(tick("ep", 2), undefined, heldA.fenced))
        assert.deepInclude(stale, { _tag: "LeaseLost", id: "ep", owner: a.owner })
        assert.strictEqual((yield* Effect.flip(heldA.renew))._tag, "LeaseLost")
        const staleEnd = yield* Effect.flip(episodes.finish("ep", { status: "interrupted" }, heldA.fenced))
        assert.strictEqual(staleEnd._tag, "LeaseLost")
        assert.deepStrictEqual(yield* ticksOf("ep"), [{ n: 1 }], "nothing of a's tick 2 was stored")
        assert.strictEqual(Option.getOrThrow(yield* episodes.episode("ep")).status, "running")

        yield* episodes.commitTick(tick("ep", 2), undefined, heldB.fenced)
        const ended = yield* episodes.commitTick(tick("ep", 3), { status: "completed" }, heldB.fenced)
        assert.strictEqual(ended.status, "completed")
        assert.deepStrictEqual(yield* ticksOf("ep"), [{ n: 1 }, { n: 2 }, { n: 3 }])
        assert.isTrue(Option.isNone(yield* b.get("ep")), "the ending released the lease")
      }).pipe(Effect.provide(database))
  )

  it.scoped(
    "watch renews every third of the lease, ends on a cancel asked elsewhere, fails once the lease is lost",
    () =>
      Effect.gen(function* () {
        const [a, b] = [yield* instance, yield* instance]
        const t0 = yield* Clock.currentTimeMillis // the suite's tests share one TestClock
        const held = yield* start(a, "ep")
        const watching = yield* Effect.fork(held.watch)
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual(Option.getOrThrow(yield* a.get("ep")).expiresAt, t0 + 20_000)
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(Option.getOrThrow(yield* a.get("ep")).expiresAt, t0 + 30_000)
        yield* b.requestCancel("ep")
        assert.isNull(watching.unsafePoll())
        yield* TestClock.adjust("5 seconds")
        assert.deepStrictEqual(yield* Fiber.join(watching), { _tag: "CancelRequested" })

        const other = yield* start(a, "ep-2")
        const lost = yield* Effect.fork(other.watch)
        const repo = yield* LeasesRepo
        yield* repo.takeOver({ episodeId: "ep-2", owner: "thief", now: Number.MAX_SAFE_INTEGER, expiresAt: 0 })
        yield* TestClock.adjust("5 seconds")
        assert.deepInclude(yield* Effect.flip(Fiber.join(lost)), { _tag: "LeaseLost", id: "ep-2" })
      }).pipe(Effect.provide(database))
  )

  it.scoped("a write that ends the episode stops the renewals; a resume after the end acquires a new lease", () =>
    Effect.gen(function* () {
      const a = yield* instance
      const episodes = yield* Episodes
      const held = yield* start(a, "ep")
      const watching = yield* Effect.fork(held.watch)
      yield* held.write(episodes.finish("ep", { status: "interrupted" }, held.fenced), () => true)
      yield* TestClock.adjust("1 minute")
      assert.isNull(watching.unsafePoll(), "no renewal after the end: it waits to be interrupted")
      yield* Fiber.interrupt(watching)
      const again = yield* a.acquire("ep")
      assert.deepStrictEqual(again.fenced.holder, { episodeId: "ep", owner: a.owner, fence: 1 })
    }).pipe(Effect.provide(database))
  )

  it.scoped("a handover ends the lease at once and stops the renewals: another instance takes over at once", () =>
    Effect.gen(function* () {
      const [a, b] = [yield* instance, yield* instance]
      const held = yield* start(a, "ep")
      const watching = yield* Effect.fork(held.watch)
      yield* held.handOver
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(Option.getOrThrow(yield* a.get("ep")).expiresAt, 0, "not renewed after the handover")
      assert.deepStrictEqual(yield* b.expired(), ["ep"])
      const taken = yield* b.takeOver("ep")
      assert.deepStrictEqual(taken.fenced.holder, { episodeId: "ep", owner: b.owner, fence: 2 })
      assert.strictEqual((yield* Effect.flip(held.renew))._tag, "LeaseLost")
      yield* Fiber.interrupt(watching)
    }).pipe(Effect.provide(database))
  )
})
