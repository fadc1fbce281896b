/**
 * The SQL of episode leases (Store/LeasesRepo.ts) on SQLite and PostgreSQL (test/support/Stores.ts), at explicit times: a lease is acquired once, renewed and
 * released only by its holder (owner and fence), taken over only after it expired and only while its episode runs,
 * and a cancel flag survives a takeover. Time is the `now` each call passes, so no clock is involved here; the
 * runtime's use of the clock is test/Agent/EpisodeLeases.test.ts.
 */
import { assert } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { EpisodesRepo } from "../../src/Store/EpisodesRepo.js"
import { LeasesRepo } from "../../src/Store/LeasesRepo.js"
import { eachStore, freshStore } from "../support/Stores.js"

const layer = Layer.merge(LeasesRepo.Default, EpisodesRepo.Default).pipe(Layer.provideMerge(freshStore))

/** A running episode `id` in the episodes table (the takeover only takes leases of running episodes). */
const running = (id: string) =>
  Effect.flatMap(EpisodesRepo, (repo) =>
    repo.insertEpisode({
      ...{ id, agent: "a", goal: "g", spec: {}, status: "running" },
      ...{ createdAt: 0, updatedAt: 0, ticks: 0, tokens: 0 }
    })
  )

const claim = (episodeId: string, owner: string, now: number) => ({ episodeId, owner, now, expiresAt: now + 15_000 })

eachStore("LeasesRepo", (it) => {
  it.effect("acquire: a new lease at fence 1; refused while it runs; after expiry the next owner gets fence 2", () =>
    Effect.gen(function* () {
      const leases = yield* LeasesRepo
      const first = Option.getOrThrow(yield* leases.acquire(claim("ep", "a", 1_000)))
      assert.deepStrictEqual(first, {
        episodeId: "ep",
        owner: "a",
        expiresAt: 16_000,
        fence: 1,
        cancelRequested: false
      })
      assert.isTrue(Option.isNone(yield* leases.acquire(claim("ep", "b", 15_999))), "held until it expires")
      assert.isTrue(Option.isNone(yield* leases.acquire(claim("ep", "b", 16_000))), "expires strictly after")
      const second = Option.getOrThrow(yield* leases.acquire(claim("ep", "b", 16_001)))
      assert.deepStrictEqual({ owner: second.owner, fence: second.fence }, { owner: "b", fence: 2 })
      assert.deepStrictEqual(yield* leases.get("ep"), Option.some(second))
    }).pipe(Effect.provide(layer))
  )

  it.effect("renew and release only by the holder: a stale (owner, fence) matches nothing", () =>
    Effect.gen(function* () {
      const leases = yield* LeasesRepo
      yield* leases.acquire(claim("ep", "a", 0))
      const a = { episodeId: "ep", owner: "a", fence: 1 }
      assert.strictEqual(Option.getOrThrow(yield* leases.renew(a, 20_000)).expiresAt, 20_000)
      assert.isTrue(Option.isNone(yield* leases.acquire(claim("ep", "b", 16_000))), "the renewal holds it")
      yield* leases.acquire(claim("ep", "b", 20_001))
      assert.isTrue(Option.isNone(yield* leases.renew(a, 40_000)), "a lost it")
      assert.isFalse(yield* leases.release(a))
      assert.isFalse(yield* leases.release({ episodeId: "ep", owner: "a", fence: 2 }), "the fence alone is not enough")
      assert.isTrue(yield* leases.release({ episodeId: "ep", owner: "b", fence: 2 }))
      assert.isTrue(Option.isNone(yield* leases.get("ep")))
    }).pipe(Effect.provide(layer))
  )

  it.effect("takeOver: only an expired lease of a running episode, one winner", () =>
    Effect.gen(function* () {
      const leases = yield* LeasesRepo
      assert.isTrue(Option.isNone(yield* leases.takeOver(claim("ep", "b", 99_000))), "no lease: nothing to take")
      yield* running("ep")
      yield* leases.insert("ep", "a", 1, 15_000)
      assert.isTrue(Option.isNone(yield* leases.takeOver(claim("ep", "b", 10_000))), "not expired yet")
      const [b, c] = yield* Effect.all(
        [leases.takeOver(claim("ep", "b", 15_001)), leases.takeOver(claim("ep", "c", 15_001))],
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(
        Option.map(b, (l) => [l.owner, l.fence]),
        Option.some(["b", 2])
      )
      assert.isTrue(Option.isNone(c), "the second finds it held by b")

      yield* leases.insert("ended", "a", 1, 0)
      assert.isTrue(Option.isNone(yield* leases.takeOver(claim("ended", "b", 99_000))), "its episode does not run")
    }).pipe(Effect.provide(layer))
  )

  it.effect("expired: running episodes whose lease expired, the longest expired first", () =>
    Effect.gen(function* () {
      const leases = yield* LeasesRepo
      for (const [id, until] of [
        ["x", 3_000],
        ["y", 1_000],
        ["z", 9_000]
      ] as const) {
        yield* running(id)
        yield* leases.insert(id, "a", 1, until)
      }
      yield* leases.insert("not-an-episode", "a", 1, 0)
      assert.deepStrictEqual(yield* leases.expired(5_000, 10), ["y", "x"])
      assert.deepStrictEqual(yield* leases.expired(5_000, 1), ["y"])
    }).pipe(Effect.provide(layer))
  )

  it.effect("a cancel asked is kept by a takeover; there is nothing to cancel without a lease", () =>
    Effect.gen(function* () {
      const leases = yield* LeasesRepo
      yield* running("ep")
      yield* leases.insert("ep", "a", 1, 1_000)
      assert.isTrue(Option.getOrThrow(yield* leases.requestCancel("ep")).cancelRequested)
      const taken = Option.getOrThrow(yield* leases.takeOver(claim("ep", "b", 2_000)))
      assert.isTrue(taken.cancelRequested)
      assert.isTrue(Option.isNone(yield* leases.requestCancel("other")))
    }).pipe(Effect.provide(layer))
  )

  it.effect("expire (a handover): only by its holder; expired at once on any clock; the takeover gets fence + 1", () =>
    Effect.gen(function* () {
      const leases = yield* LeasesRepo
      yield* running("ep")
      yield* leases.insert("ep", "a", 1, 60_000)
      yield* leases.requestCancel("ep")
      assert.isFalse(yield* leases.expire({ episodeId: "ep", owner: "b", fence: 1 }), "not b's lease")
      assert.isFalse(yield* leases.expire({ episodeId: "ep", owner: "a", fence: 2 }), "not this fence")
      assert.isTrue(yield* leases.expire({ episodeId: "ep", owner: "a", fence: 1 }))
      assert.deepStrictEqual(
        yield* leases.get("ep"),
        Option.some({ episodeId: "ep", owner: "a", expiresAt: 0, fence: 1, cancelRequested: true })
      )
      assert.deepStrictEqual(yield* leases.expired(1, 10), ["ep"], "expired for a clock far behind the owner's")
      const taken = Option.getOrThrow(yield* leases.takeOver(claim("ep", "b", 1)))
      assert.deepInclude(taken, { owner: "b", fence: 2, cancelRequested: true })
    }).pipe(Effect.provide(layer))
  )
})
