/**
 * Episode leases: with several Sluice instances on one database, an episode runs on one instance at a time. The
 * instance that runs it holds a lease (a row of `episode_leases`, Store/LeasesRepo.ts) and renews it while the
 * episode ticks; when the owner dies, the lease expires and another instance takes the episode over (AgentRuns'
 * scanner), resuming after the last committed tick.
 *
 * Choices:
 * - The lease length is `SLUICE_AGENT_LEASE` (default 15 s). The owner renews every third of it (and before each
 *   tick and with each tick's commit), so two renewals can fail before another instance may take over; the
 *   scanner looks every half of it. A takeover happens at most a lease length after the owner's last renewal.
 * - Exactly-once ticks come from fencing, not from timing: every write of a runner is guarded by its owner id and
 *   fence in the write's own transaction (`Episodes.Fenced`), so an owner that was only paused (not dead) past
 *   its lease cannot commit once another instance took over. Clocks only decide when a takeover is allowed: keep
 *   the instances' clocks in sync (NTP) well within a lease length.
 * - An instance id per service (one per process in `sluice serve`): host name, pid and a random suffix, so a
 *   restarted process on the same host never mistakes an old lease for its own.
 * - A cancel asked on an instance that does not run the episode is a flag in the lease row; the owner reads it at
 *   each renewal, so it stops within a third of a lease length (or before its next tick).
 * - A renewal that fails on a storage error is retried at the next round; if the database stays away, the tick's
 *   commit fails and the episode is taken over once the database answers again.
 * - A handover (`sluice serve` shutting down) ends the lease at once but keeps its row, owner and fence
 *   (`LeasesRepo.expire`): the episode stays running and the next scan of any instance takes it over, without
 *   waiting for the lease to run out. If the database does not answer, the lease runs out by itself.
 */
import { Clock, Config, Duration, Effect, Metric, Option } from "effect"
import { randomBytes } from "node:crypto"
import { hostname } from "node:os"
import * as Metrics from "../Observability/Metrics.js"
import { type Lease, LeasesRepo } from "../Store/LeasesRepo.js"
import type { StorageError } from "../Store/StorageError.js"
import type { Fenced } from "./Episodes.js"
import { LeaseHeld, LeaseLost, NotTakenOver } from "./EpisodesError.js"

/** `SLUICE_AGENT_LEASE`: how long an episode's lease lasts without renewal (default 15 seconds). */
export const leaseLength = Config.duration("SLUICE_AGENT_LEASE").pipe(Config.withDefault(Duration.seconds(15)))

/** The owner cancelling its episode after a cancel was asked elsewhere. */
export const CancelRequested = { _tag: "CancelRequested" } as const
export type CancelRequested = typeof CancelRequested

/** The lease a runner holds while its episode runs. */
export interface Held {
  readonly fenced: Fenced
  /** Renews the lease: true when a cancel was asked; LeaseLost when another instance took it over. */
  readonly renew: Effect.Effect<boolean, LeaseLost | StorageError>
  /** Runs a fenced write so that no renewal runs beside it; once `ended` says the episode ended, renewals stop. */
  readonly write: <A, E, R>(effect: Effect.Effect<A, E, R>, ended: (a: A) => boolean) => Effect.Effect<A, E, R>
  /** Renews every third of the lease until interrupted; ends when a cancel was asked, fails when the lease is lost. */
  readonly watch: Effect.Effect<CancelRequested, LeaseLost>
  /** Gives the lease up without a write (the episode could not be reopened); never fails. */
  readonly release: Effect.Effect<void>
  /** Ends the lease at once and stops the renewals, leaving the episode to the next takeover; never fails. */
  readonly handOver: Effect.Effect<void>
}

const instanceId = () => `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`

export class EpisodeLeases extends Effect.Service<EpisodeLeases>()("sluice/EpisodeLeases", {
  effect: Effect.gen(function* () {
    const repo = yield* LeasesRepo
    const length = yield* leaseLength
    const ttlMs = Duration.toMillis(length)
    const owner = instanceId()

    const fencedOf = (lease: Lease): Fenced => ({
      holder: { episodeId: lease.episodeId, owner: lease.owner, fence: lease.fence },
      ttlMs
    })
    const claim = (episodeId: string) =>
      Effect.map(Clock.currentTimeMillis, (now) => ({ episodeId, owner, now, expiresAt: now + ttlMs }))

    /** The holder of `fenced`, with its renewals serialized with its writes. */
    const hold = (fenced: Fenced) =>
      Effect.map(Effect.makeSemaphore(1), (lock): Held => {
        let ended = false
        const lost = new LeaseLost({ id: fenced.holder.episodeId, owner })
        const renewOnce = Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.flatMap(repo.renew(fenced.holder, now + ttlMs), (lease) =>
            Option.isNone(lease) ? Effect.fail(lost) : Effect.succeed(lease.value.cancelRequested)
          )
        )
        // checked under the lock: a write that ends the episode (and deletes the lease) may be in progress
        const round = lock.withPermits(1)(
          Effect.suspend(() => (ended ? Effect.succeed(Option.none<boolean>()) : Effect.asSome(renewOnce))).pipe(
            Effect.catchTag("StorageError", (error) =>
              Effect.as(Effect.logWarning("cannot renew the episode's lease; trying again", error), Option.some(false))
            )
          )
        )
        const watch: Held["watch"] = Effect.sleep(Duration.millis(ttlMs / 3)).pipe(
          Effect.zipRight(Effect.flatMap(round, Option.match({ onNone: () => Effect.never, onSome: Effect.succeed }))),
          Effect.repeat({ until: (cancel) => cancel }),
          Effect.as(CancelRequested)
        )
        return {
          fenced,
          renew: lock.withPermits(1)(renewOnce),
          write: (effect, isEnd) =>
            lock.withPermits(1)(Effect.tap(effect, (a) => Effect.sync(() => (ended = ended || isEnd(a))))),
          watch,
          release: repo
            .release(fenced.holder)
            .pipe(Effect.catchAll((error) => Effect.logWarning("cannot release the episode's lease", error))),
          handOver: lock
            .withPermits(1)(
              Effect.suspend(() => {
                ended = true
                return repo.expire(fenced.holder)
              })
            )
            .pipe(
              Effect.catchAll((error) => Effect.logWarning("cannot hand the episode's lease over; it runs out", error)),
              Effect.asVoid
            )
        }
      })

    return {
      /** This instance's id, the `owner` of the leases it holds. */
      owner,
      /** The lease length. */
      length,
      /** The lease of an episode this instance starts (stored by `Episodes.start`, fence 1). */
      fresh: (episodeId: string) => hold({ holder: { episodeId, owner, fence: 1 }, ttlMs }),
      /** A new lease, or the expired lease of a dead owner; LeaseHeld while another instance holds it. */
      acquire: (episodeId: string): Effect.Effect<Held, LeaseHeld | StorageError> =>
        Effect.flatMap(claim(episodeId), repo.acquire).pipe(
          Effect.flatMap(
            Option.match({
              onSome: (lease) => hold(fencedOf(lease)),
              onNone: () =>
                Effect.flatMap(repo.get(episodeId), (held) =>
                  Effect.fail(
                    new LeaseHeld({
                      id: episodeId,
                      owner: Option.match(held, { onNone: () => "(none)", onSome: (l) => l.owner }),
                      expiresAt: Option.match(held, { onNone: () => 0, onSome: (l) => l.expiresAt })
                    })
                  )
                )
            })
          ),
          Effect.withSpan("EpisodeLeases.acquire")
        ),
      /** The expired lease of a running episode; NotTakenOver when another instance won it or the episode ended. */
      takeOver: (episodeId: string): Effect.Effect<Held, NotTakenOver | StorageError> =>
        Effect.flatMap(claim(episodeId), repo.takeOver).pipe(
          Effect.flatMap(
            Option.match({
              onNone: () => Effect.fail(new NotTakenOver({ id: episodeId })),
              onSome: (lease) => Effect.zipRight(Metric.increment(Metrics.episodeTakeovers), hold(fencedOf(lease)))
            })
          ),
          Effect.withSpan("EpisodeLeases.takeOver")
        ),
      /** Asks the owner to stop the episode; the lease as it stands, none when no instance holds one. */
      requestCancel: (episodeId: string) => repo.requestCancel(episodeId),
      /** The episode's lease, if an instance holds one. */
      get: (episodeId: string) => repo.get(episodeId),
      /** Running episodes whose lease expired: their owner died (or stalled past its lease). */
      expired: (limit = 100) => Effect.flatMap(Clock.currentTimeMillis, (now) => repo.expired(now, limit))
    } as const
  }),
  dependencies: [LeasesRepo.Default]
}) {}
