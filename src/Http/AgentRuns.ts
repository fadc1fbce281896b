/**
 * The agent episodes run by this gateway: those started through it (`POST /agents/episodes`) and those it took
 * over from another instance. Each runs in a background fiber of this scoped service (a FiberMap keyed by episode
 * id), so the request that started it can end at once.
 * Optional in the gateway: `sluice serve` provides it (`layer`); without it the agent routes answer 503.
 *
 * Shutdown hands the episodes over rather than ending them (`handOver`): each finishes and commits its tick in
 * flight, stops, stays "running" and its lease ends at once, so another instance's scan (every half lease) or
 * this instance's own first scan after a restart continues it. `sluice serve` starts the handover as shutdown
 * begins (`handOverOnShutdown`, beside the gateway's drain), so the last ticks and the requests in flight share
 * one deadline, `SLUICE_DRAIN_TIMEOUT` from the signal; a tick still running at that deadline is interrupted and
 * run again by the next owner, as after a crash. No takeover starts here once the handover began. (`sluice agent
 * run`, in the foreground, keeps Ctrl-C's meaning: its episodes end "interrupted".)
 *
 * Several instances on one database (docs/agents.md): every episode runs under a lease (Agent/EpisodeLeases.ts).
 * - Takeover: a scanner looks every half lease length for running episodes whose lease expired and takes them
 *   over through the runtime (`Agent.takeOver`, the resume path, from the last committed tick); the atomic
 *   takeover lets one instance win, the others skip it.
 * - Cancel: an episode running here is interrupted at once; one running on another instance gets the cancel flag
 *   in its lease, and the answer waits (at most a lease length) until its owner has ended it; one whose owner
 *   died is taken over and ended here.
 */
import { Clock, Deferred, Duration, Effect, ExecutionStrategy, Fiber, FiberMap, Layer, Option, Ref } from "effect"
import { Schedule, Scope } from "effect"
import * as Agent from "../Agent/Agent.js"
import type * as AgentSpec from "../Agent/AgentSpec.js"
import { EpisodeLeases } from "../Agent/EpisodeLeases.js"
import { Episodes } from "../Agent/Episodes.js"
import * as Config from "../Config.js"
import type { Episode } from "../Domain/Episode.js"

/**
 * What `cancel` found: no such episode; an episode no instance runs; an episode that stopped (here, on its owner,
 * or taken over from a dead owner and ended here) with its status; a cancel asked that its owner has not acted on.
 */
export type Cancelled =
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "NotRunning"; readonly status: string }
  | { readonly _tag: "Stopped"; readonly status: string }
  | { readonly _tag: "Requested"; readonly owner: string }

type Run<E> = (options: Agent.RunOptions) => Effect.Effect<Episode, E>

export class AgentRuns extends Effect.Service<AgentRuns>()("sluice/AgentRuns", {
  scoped: Effect.gen(function* () {
    const agent = yield* Agent.Agent
    const episodes = yield* Episodes
    const leases = yield* EpisodeLeases
    const drainTimeout = yield* Config.drainTimeout
    // the episodes' fibers: a scope of their own, closed after the handover below has waited for them
    const runs = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const fibers = yield* FiberMap.make<string>()
    const handingOver = yield* Deferred.make<void>()
    const handOverAt = yield* Ref.make(Option.none<number>())

    /** Starts the handover (once): every episode stops after its tick in flight. */
    const handOver = Effect.gen(function* () {
      if (Option.isSome(yield* Ref.get(handOverAt))) return
      yield* Ref.set(handOverAt, Option.some(yield* Clock.currentTimeMillis))
      yield* Deferred.succeed(handingOver, undefined)
      const running = yield* FiberMap.size(fibers)
      if (running > 0) yield* Effect.logInfo(`shutdown: handing ${running} agent episodes over after their tick`)
    })

    /** Waits for the episodes to stop, until the deadline; the FiberMap's own finalizer interrupts the rest. */
    const handedOver = Effect.gen(function* () {
      yield* handOver
      const started = Option.getOrElse(yield* Ref.get(handOverAt), () => 0)
      const left = started + Duration.toMillis(drainTimeout) - (yield* Clock.currentTimeMillis)
      // awaitEmpty awaits the fibers' exits, it never fails
      const empty = Effect.orDie(FiberMap.awaitEmpty(fibers))
      yield* Effect.interruptible(empty).pipe(Effect.timeoutOption(Math.max(0, left)))
      const late = yield* FiberMap.size(fibers)
      if (late > 0) yield* Effect.logWarning(`shutdown: ${late} agent ticks cut at the deadline, to be run again`)
    })
    yield* Effect.addFinalizer(() => handedOver)

    /** Runs an episode in the background; answers once it started (or fails as the runtime refused it). */
    const launch = <E>(what: string, run: Run<E>) =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<Episode>()
        const onStart = (episode: Episode) => Deferred.succeed(started, episode)
        const fiber = yield* run({ onStart, handOver: handingOver }).pipe(
          Effect.tapError((error) =>
            Effect.whenEffect(
              Effect.logWarning(`${what}: the episode ended with an error`, error),
              Deferred.isDone(started)
            )
          ),
          Effect.forkIn(runs)
        )
        // the fiber ends first only when the runtime refused to start it
        const episode = yield* Effect.raceFirst(Deferred.await(started), Fiber.join(fiber))
        yield* FiberMap.set(fibers, episode.id, fiber)
        return episode
      })

    /**
     * Starts an episode of `spec` in the background; answers once it is stored (or fails as the runtime refuses
     * it: an unknown tool, no goal).
     */
    const start = Effect.fn("AgentRuns.start")((spec: AgentSpec.AgentSpec, goal?: string) =>
      launch(`agent ${spec.name}`, (options) => agent.run(spec, goal, options))
    )

    /** Takes over the running episodes whose lease expired; another instance winning one is no error. */
    const scan = Effect.gen(function* () {
      for (const id of yield* leases.expired()) {
        if (yield* Deferred.isDone(handingOver)) return
        if (yield* FiberMap.has(fibers, id)) continue
        yield* launch(`episode ${id}`, (options) => agent.takeOver(id, options)).pipe(
          Effect.tap(() => Effect.logInfo(`episode ${id}: taken over from an instance whose lease expired`)),
          Effect.catchTag("NotTakenOver", () => Effect.void),
          Effect.catchAll((error) => Effect.logWarning(`episode ${id}: cannot take it over`, error))
        )
      }
    }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("the episode takeover scan failed", cause)))
    const every = Duration.millis(Duration.toMillis(leases.length) / 2)
    yield* scan.pipe(Effect.repeat(Schedule.spaced(every)), Effect.forkScoped)

    /** The episode once it no longer runs (or is gone), polled; none when it still runs after a lease length. */
    const stopped = (id: string) =>
      Effect.gen(function* () {
        while (true) {
          const found = yield* episodes.episode(id)
          if (Option.isNone(found) || found.value.status !== "running") return found
          yield* Effect.sleep("100 millis")
        }
      }).pipe(Effect.timeoutOption(leases.length), Effect.map(Option.flatten))

    /** Asks the owner of an episode running elsewhere to stop it, or ends it here when its owner died. */
    const cancelElsewhere = (id: string, status: string) =>
      Effect.gen(function* () {
        const lease = yield* leases.requestCancel(id)
        if (Option.isNone(lease)) return { _tag: "NotRunning", status } as Cancelled
        const now = yield* Clock.currentTimeMillis
        if (lease.value.expiresAt < now) {
          const ended = yield* agent.takeOver(id).pipe(Effect.option)
          if (Option.isSome(ended)) return { _tag: "Stopped", status: ended.value.status } as Cancelled
        }
        const done = yield* stopped(id)
        return Option.match(done, {
          onNone: (): Cancelled => ({ _tag: "Requested", owner: lease.value.owner }),
          onSome: (episode): Cancelled => ({ _tag: "Stopped", status: episode.status })
        })
      })

    /** Stops the episode: interrupted here if it runs here, else through its lease (see the module comment). */
    const cancel = Effect.fn("AgentRuns.cancel")(function* (id: string) {
      const found = yield* episodes.episode(id)
      if (Option.isNone(found)) return { _tag: "NotFound" } as Cancelled
      if (yield* FiberMap.has(fibers, id)) {
        yield* FiberMap.remove(fibers, id)
        return { _tag: "Stopped", status: "interrupted" } as Cancelled
      }
      const { status } = found.value
      return status === "running" ? yield* cancelElsewhere(id, status) : ({ _tag: "NotRunning", status } as Cancelled)
    })

    return { start, cancel, handOver, episodes, leases } as const
  })
}) {}

/**
 * Starts the handover when its scope closes. `sluice serve` builds it above the gateway, so it runs first at
 * shutdown, as the drain begins: the episodes' last ticks and the requests in flight then share the deadline.
 */
export const handOverOnShutdown = Layer.scopedDiscard(
  Effect.flatMap(AgentRuns, (runs) => Effect.addFinalizer(() => runs.handOver))
)

/** The service with the agent runtime; needs the engine (`Llm`) and the database (`SqlClient`). */
export const layer = AgentRuns.Default.pipe(Layer.provideMerge(Agent.layer()))
