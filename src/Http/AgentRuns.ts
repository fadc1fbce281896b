/**
 * The agent episodes started through the gateway (`POST /agents/episodes`): each runs in a background fiber of
 * this scoped service (a FiberMap keyed by episode id), so the request that started it can end at once and
 * shutdown interrupts it (the runtime then marks the episode "interrupted", resumable with `sluice agent resume`).
 * Optional in the gateway: `sluice serve` provides it (`layer`); without it the agent routes answer 503.
 */
import { Deferred, Effect, Fiber, FiberMap, Layer, Option } from "effect"
import * as Agent from "../Agent/Agent.js"
import type * as AgentSpec from "../Agent/AgentSpec.js"
import { Episodes } from "../Agent/Episodes.js"
import type { Episode } from "../Domain/Episode.js"

/** What `cancel` found: no such episode, an episode not running here, or the interrupted one. */
export type Cancelled =
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "NotRunning"; readonly status: string }
  | { readonly _tag: "Interrupted" }

export class AgentRuns extends Effect.Service<AgentRuns>()("sluice/AgentRuns", {
  scoped: Effect.gen(function* () {
    const agent = yield* Agent.Agent
    const episodes = yield* Episodes
    const scope = yield* Effect.scope
    const fibers = yield* FiberMap.make<string>()

    /**
     * Starts an episode of `spec` in the background; answers once it is stored (or fails as the runtime refuses
     * it: an unknown tool, no goal).
     */
    const start = Effect.fn("AgentRuns.start")(function* (spec: AgentSpec.AgentSpec, goal?: string) {
      const started = yield* Deferred.make<Episode>()
      const fiber = yield* agent.run(spec, goal, { onStart: (episode) => Deferred.succeed(started, episode) }).pipe(
        Effect.tapError((error) =>
          Effect.whenEffect(
            Effect.logWarning(`agent ${spec.name}: the episode ended with an error`, error),
            Deferred.isDone(started)
          )
        ),
        Effect.forkIn(scope)
      )
      // the fiber ends first only when the runtime refused to start it
      const episode = yield* Effect.raceFirst(Deferred.await(started), Fiber.join(fiber))
      yield* FiberMap.set(fibers, episode.id, fiber)
      return episode
    })

    /** Interrupts the episode's fiber and waits until it is marked interrupted. */
    const cancel = Effect.fn("AgentRuns.cancel")(function* (id: string) {
      const found = yield* episodes.get(id)
      if (Option.isNone(found)) return { _tag: "NotFound" } as Cancelled
      const running = yield* FiberMap.has(fibers, id)
      if (!running) return { _tag: "NotRunning", status: found.value.episode.status } as Cancelled
      yield* FiberMap.remove(fibers, id)
      return { _tag: "Interrupted" } as Cancelled
    })

    return { start, cancel, episodes } as const
  })
}) {}

/** The service with the agent runtime; needs the engine (`Llm`) and the database (`SqlClient`). */
export const layer = AgentRuns.Default.pipe(Layer.provideMerge(Agent.layer()))
