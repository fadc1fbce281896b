/**
 * The record of agent runs: an episode per run of an agent toward a goal, and its ticks. The agent runtime
 * starts an episode, commits each tick as it ends, and finishes it; `agent resume` reopens an interrupted one
 * and continues after its last committed tick.
 *
 * Choices:
 * - `commitTick` is one transaction: it counts the tick on the episode (ticks, tokens, updated_at), writes the
 *   tick row, and optionally ends the episode. Either all of it is stored or none, so a crash loses at most the
 *   tick in flight.
 * - Tick numbers are 1, 2, 3... per episode: a tick is accepted only as `episode.ticks + 1` (else
 *   `TickOutOfOrder`), and the ticks primary key (episode_id, n) refuses a duplicate even past that check.
 * - Only a running episode takes ticks; `finish` ends a running or interrupted one; `resume` reopens a running
 *   (crashed) or interrupted one. The runtime ensures one live runner per episode.
 * - Archived episodes are not in the hot tables: `get` and `list` do not see them (see `Archive.ts`).
 * - Fencing (several instances, `EpisodeLeases.ts`): a runner passes the lease it holds (`Fenced`) to `start`,
 *   `commitTick`, `finish` and `resume`. The write then first renews its lease (or, when it ends the episode,
 *   deletes it) guarded by owner and fence, in the same transaction: when another instance took the episode
 *   over, that guard matches no row and the whole write is rolled back with `LeaseLost`. So a tick commits only
 *   while its runner holds the lease, and after a takeover only the new owner's ticks commit.
 */
import { Clock, Effect, Option } from "effect"
import { EpisodesRepo, type ListQuery } from "../Store/EpisodesRepo.js"
import { type Holder, LeasesRepo } from "../Store/LeasesRepo.js"
import type { StorageError } from "../Store/StorageError.js"
import { type EpisodeError, EpisodeNotFound, EpisodeNotRunning, LeaseLost, TickOutOfOrder } from "./EpisodesError.js"
import type { EndStatus, Episode, HotStatus, Tick } from "../Domain/Episode.js"

/** What an episode starts with; `id` defaults to a random UUID. */
export interface StartInput {
  readonly agent: string
  readonly goal: string
  readonly spec: unknown
  readonly id?: string | undefined
}

/** How an episode ends. */
export interface Ending {
  readonly status: EndStatus
  readonly result?: string | undefined
  readonly error?: string | undefined
}

/** An episode with its ticks, in order. */
export interface EpisodeDetail {
  readonly episode: Episode
  readonly ticks: ReadonlyArray<Tick>
}

/** The lease a runner writes under (EpisodeLeases.ts): its writes commit only while `holder` still holds it. */
export interface Fenced {
  readonly holder: Holder
  /** How far each write extends the lease, from the write's time. */
  readonly ttlMs: number
}

export type { ListQuery }

export class Episodes extends Effect.Service<Episodes>()("sluice/Episodes", {
  effect: Effect.gen(function* () {
    const repo = yield* EpisodesRepo
    const leases = yield* LeasesRepo

    /** Renews the runner's lease (or deletes it with `release`); LeaseLost when it no longer holds it. */
    const fence = (fenced: Fenced | undefined, now: number, release: boolean) => {
      if (fenced === undefined) return Effect.void
      const { holder, ttlMs } = fenced
      const held = release ? leases.release(holder) : Effect.map(leases.renew(holder, now + ttlMs), Option.isSome)
      return Effect.flatMap(held, (ok) =>
        ok ? Effect.void : Effect.fail(new LeaseLost({ id: holder.episodeId, owner: holder.owner }))
      )
    }

    /** Why `operation` found no episode in one of the `allowed` statuses. */
    const refusal = (
      id: string,
      operation: string
    ): Effect.Effect<never, EpisodeNotFound | EpisodeNotRunning | StorageError> =>
      Effect.flatMap(repo.episode(id), (found) =>
        Effect.fail(
          Option.isNone(found)
            ? new EpisodeNotFound({ id, where: "hot" })
            : new EpisodeNotRunning({ id, status: found.value.status, operation })
        )
      )

    const change = (id: string, from: ReadonlyArray<HotStatus>, ending: Ending, operation: string) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const changed = yield* repo.setStatus(id, from, { ...ending, now, endedAt: now })
        return Option.isSome(changed) ? changed.value : yield* refusal(id, operation)
      })

    /** Starts a running episode with no ticks; with `lease`, its runner's lease is stored with it. */
    const start = Effect.fn("Episodes.start")(function* (input: StartInput, lease?: Fenced) {
      const now = yield* Clock.currentTimeMillis
      const id = input.id ?? crypto.randomUUID()
      const episode: Episode = {
        ...{ id, agent: input.agent, goal: input.goal, spec: input.spec, status: "running" },
        ...{ createdAt: now, updatedAt: now, ticks: 0, tokens: 0 }
      }
      if (lease === undefined) yield* repo.insertEpisode(episode)
      else {
        const { fence, owner } = lease.holder
        const insert = Effect.zipRight(repo.insertEpisode(episode), leases.insert(id, owner, fence, now + lease.ttlMs))
        yield* repo.transaction("episodes.start")(insert)
      }
      return episode
    })

    /**
     * Commits a finished tick in one transaction: the tick row, the episode's counters, and, with `ending`, the
     * end of the episode, all fenced by `lease`. Returns the episode as stored.
     */
    const commitTick = Effect.fn("Episodes.commitTick")(function* (tick: Tick, ending?: Ending, lease?: Fenced) {
      const now = yield* Clock.currentTimeMillis
      const id = tick.episodeId
      const write = Effect.gen(function* () {
        yield* fence(lease, now, ending !== undefined)
        const advanced = yield* repo.advance(id, tick.n, tick.tokens, now)
        if (Option.isNone(advanced)) return yield* outOfOrder(tick)
        yield* repo.insertTick(tick)
        return ending === undefined ? advanced.value : yield* change(id, ["running"], ending, "finish")
      })
      return yield* repo.transaction("episodes.commitTick")(write)
    })

    const outOfOrder = (tick: Tick): Effect.Effect<never, EpisodeError | StorageError> =>
      Effect.flatMap(repo.episode(tick.episodeId), (found): Effect.Effect<never, EpisodeError | StorageError> =>
        Option.isSome(found) && found.value.status === "running"
          ? Effect.fail(new TickOutOfOrder({ id: tick.episodeId, expected: found.value.ticks + 1, got: tick.n }))
          : refusal(tick.episodeId, `commit tick ${tick.n}`)
      )

    /** Ends a running or interrupted episode; with `lease`, deletes the runner's lease in the same transaction. */
    const finish = Effect.fn("Episodes.finish")(function* (id: string, ending: Ending, lease?: Fenced) {
      const end = change(id, ["running", "interrupted"], ending, `finish as ${ending.status}`)
      if (lease === undefined) return yield* end
      const now = yield* Clock.currentTimeMillis
      return yield* repo.transaction("episodes.finish")(Effect.zipRight(fence(lease, now, true), end))
    })

    /** Reopens a running (crashed) or interrupted episode; the next tick is `episode.ticks + 1`. */
    const resume = Effect.fn("Episodes.resume")(function* (id: string, lease?: Fenced) {
      const now = yield* Clock.currentTimeMillis
      const reopen = repo.setStatus(id, ["running", "interrupted"], { status: "running", now, endedAt: null })
      const reopened = yield* repo.transaction("episodes.resume")(Effect.zipRight(fence(lease, now, false), reopen))
      return Option.isSome(reopened) ? reopened.value : yield* refusal(id, "resume")
    })

    /** The episode with its ticks, if it is in the hot tables. */
    const get = Effect.fn("Episodes.get")(function* (id: string) {
      const found = yield* repo.episode(id)
      if (Option.isNone(found)) return Option.none<EpisodeDetail>()
      return Option.some<EpisodeDetail>({ episode: found.value, ticks: yield* repo.ticks(id) })
    })

    return {
      start,
      commitTick,
      finish,
      resume,
      get,
      /** The episode without its ticks, if it is in the hot tables. */
      episode: (id: string): Effect.Effect<Option.Option<Episode>, StorageError> =>
        repo.episode(id).pipe(Effect.withSpan("Episodes.episode")),
      /** Episodes by agent, status and creation time, newest first (default limit 100). */
      list: (query: ListQuery = {}): Effect.Effect<ReadonlyArray<Episode>, StorageError> =>
        repo.list(query).pipe(Effect.withSpan("Episodes.list")),
      /** The number of the last committed tick, none before the first. */
      lastTick: (id: string): Effect.Effect<Option.Option<number>, StorageError> =>
        repo.lastTick(id).pipe(Effect.withSpan("Episodes.lastTick"))
    } as const
  }),
  dependencies: [EpisodesRepo.Default, LeasesRepo.Default]
}) {}
