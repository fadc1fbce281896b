/**
 * The agent runtime (ARCHITECTURE.md §7): runs an agent spec toward a goal as an episode, tick by tick. Each tick
 * observes the agent's inbox, recalls memories, thinks with tools, acts, remembers (AgentTick.ts), and is
 * committed with `Episodes.commitTick` in one transaction before the next starts.
 *
 * Choices:
 * - How an episode ends: `finish` -> completed with its result; a tick that fails (the engine or the memory gave
 *   up) -> failed with the error; a tick over budget -> recorded as "budget-exceeded", then the next tick
 *   (`onBudgetExceeded: "continue"`) or failed (`"end"`); tick `maxTicks` without `finish` -> failed.
 *   The ending is committed with the tick that causes it, so no crash can separate the two.
 * - The commit is uninterruptible: a tick is stored whole or not at all. Interrupting a run (Ctrl-C, a cancel)
 *   drops the tick in flight and marks the episode "interrupted"; a killed process leaves it "running". Both
 *   resume at `ticks + 1` with the spec stored in the episode.
 * - A handover (`RunOptions.handOver`, `sluice serve` shutting down): the runner lets the tick in flight finish and
 *   commit, stops before the next one, leaves the episode "running" and ends its lease at once, so the next
 *   takeover scan (another instance's, or this one's after a restart) continues it. An interruption once the
 *   handover was asked (its deadline passed) hands over too: the tick in flight is then run again by the next
 *   owner, as after a crash.
 * - One runner per episode, across processes: the runner holds the episode's lease (EpisodeLeases.ts) from its
 *   start to its end, renews it while it ticks, and writes under it (every commit fenced, Episodes.ts). `resume`
 *   acquires it (`LeaseHeld` while another instance holds it), `takeOver` takes an expired one (AgentRuns'
 *   scanner). A runner that loses its lease stops with `LeaseLost` and leaves the episode to the new owner; a
 *   cancel asked through the lease (another instance) ends it as "interrupted", like a local cancel.
 * - One runner per episode in this process too (`AlreadyRunning` otherwise).
 * - `runAll` opens every agent's inbox before any tick runs, so agents started together never miss each
 *   other's first messages.
 */
import { Deferred, Effect, Layer, Option, Schema } from "effect"
import type { Scope } from "effect"
import { Llm } from "../Llm/Llm.js"
import * as Inbox from "./AgentInbox.js"
import * as AgentSpec from "./AgentSpec.js"
import * as AgentTick from "./AgentTick.js"
import { CancelRequested, EpisodeLeases, type Held } from "./EpisodeLeases.js"
import { type Ending, Episodes } from "./Episodes.js"
import { EpisodeNotFound } from "./EpisodesError.js"
import type { Episode, Tick } from "../Domain/Episode.js"
import { EventBus, type Options as BusOptions } from "./EventBus.js"
import { type Tool, ToolRegistry } from "./Tools.js"
import { type Options as MemoryOptions, VectorMemory } from "./VectorMemory.js"
import { layerLlm } from "./VectorMemoryEmbedder.js"

/** The episode already has a runner in this process. */
export class AlreadyRunning extends Schema.TaggedError<AlreadyRunning>()("AlreadyRunning", { id: Schema.String }) {
  override get message() {
    return `episode ${this.id} is already running in this process`
  }
}

export interface RunOptions {
  /** Called once the episode is started or reopened, before its first tick. */
  readonly onStart?: (episode: Episode) => Effect.Effect<void>
  /** Called after each committed tick, with the episode as stored. */
  readonly onTick?: (tick: Tick, episode: Episode) => Effect.Effect<void>
  /**
   * Completed to hand the episode over (see the module comment): the run then returns the episode still
   * "running" after its tick in flight; interrupted after it, it hands over instead of marking it "interrupted".
   */
  readonly handOver?: Deferred.Deferred<void>
}

/** An agent to start, toward `goal` (default: the spec's own `goal`). */
export interface Launch {
  readonly spec: AgentSpec.AgentSpec
  readonly goal?: string | undefined
}

/** The ticks committed so far by a runner (for its handover's log line). */
interface Progress {
  ticks: number
}

interface Prepared {
  readonly episode: Episode
  readonly spec: AgentSpec.AgentSpec
  readonly inbox: Inbox.Inbox
  readonly lease: Held
}

const isCancel = (outcome: Episode | CancelRequested): outcome is CancelRequested => outcome === CancelRequested

/** Whether a handover was asked; and the wait for it (never without `handOver`). */
const handingOver = (options: RunOptions) =>
  options.handOver === undefined ? Effect.succeed(false) : Deferred.isDone(options.handOver)
const asked = (options: RunOptions) =>
  options.handOver === undefined ? Effect.never : Deferred.await(options.handOver)

const endingOf = (spec: AgentSpec.AgentSpec, result: AgentTick.Result): Ending | undefined => {
  const { tick } = result
  if (Option.isSome(result.finished)) return { status: "completed", result: result.finished.value }
  if (tick.outcome === "error") return { status: "failed", error: `tick ${tick.n}: ${tick.error}` }
  if (tick.outcome === "budget-exceeded" && spec.onBudgetExceeded === "end") {
    return { status: "failed", error: `tick ${tick.n} went over its budget: ${tick.error}` }
  }
  if (tick.n >= spec.maxTicks) return { status: "failed", error: `no finish within maxTicks (${spec.maxTicks})` }
  return undefined
}

export class Agent extends Effect.Service<Agent>()("sluice/Agent", {
  effect: Effect.gen(function* () {
    const services: AgentTick.Services = { llm: yield* Llm, memory: yield* VectorMemory, tools: yield* ToolRegistry }
    const bus = yield* EventBus
    const episodes = yield* Episodes
    const leases = yield* EpisodeLeases
    const live = new Set<string>()

    const checkTools = (spec: AgentSpec.AgentSpec, source: string) => {
      const unknown = spec.tools.filter((name) => Option.isNone(services.tools.get(name)))
      return unknown.length === 0
        ? Effect.void
        : Effect.fail(
            new AgentSpec.SpecError({
              source,
              reason: `unknown tool(s) ${unknown.join(", ")}; the registry has ${services.tools.names.join(", ")}`
            })
          )
    }

    const prepare = (launch: Launch) =>
      Effect.gen(function* () {
        const { spec } = launch
        yield* checkTools(spec, spec.name)
        const goal = launch.goal ?? spec.goal
        if (goal === undefined) {
          return yield* new AgentSpec.SpecError({
            source: spec.name,
            reason: "no goal: give one (--goal) or set `goal`"
          })
        }
        const id = crypto.randomUUID()
        const lease = yield* leases.fresh(id)
        const episode = yield* episodes.start(
          { id, agent: spec.name, goal, spec: AgentSpec.encode(spec) },
          lease.fenced
        )
        const inbox = yield* Inbox.open(bus, spec.name)
        return { episode, spec, inbox, lease } satisfies Prepared
      })

    /** Reopens an episode under its lease: acquired (`resume`), or taken over from a dead owner (`takeOver`). */
    const reopen = (id: string, how: "resume" | "takeOver") =>
      Effect.gen(function* () {
        const found = yield* episodes.episode(id)
        if (Option.isNone(found)) return yield* new EpisodeNotFound({ id, where: "hot" })
        const spec = yield* AgentSpec.decode(found.value.spec, `of episode ${id}`)
        yield* checkTools(spec, `of episode ${id}`)
        if (live.has(id)) return yield* new AlreadyRunning({ id })
        const lease = yield* how === "resume" ? leases.acquire(id) : leases.takeOver(id)
        const episode = yield* episodes.resume(id, lease.fenced).pipe(Effect.tapError(() => lease.release))
        const inbox = yield* Inbox.open(bus, spec.name)
        return { episode, spec, inbox, lease } satisfies Prepared
      })

    /** Ends the lease at once, leaving the episode running for the next takeover. */
    const handOver = (prepared: Prepared, progress: Progress, cut: boolean) =>
      Effect.zipRight(
        prepared.lease.handOver,
        Effect.logInfo(
          `episode ${prepared.episode.id}: handed over after tick ${progress.ticks}` +
            (cut ? ", its tick in flight cut at the deadline" : "")
        )
      )

    /** Ticks from `episode.ticks + 1` until the episode ends. */
    const loop = (prepared: Prepared, options: RunOptions, progress: Progress) =>
      Effect.gen(function* () {
        const { inbox, lease, spec } = prepared
        const id = prepared.episode.id
        const interval = AgentSpec.durationOf(spec.tickInterval)
        let episode = prepared.episode
        if (options.onStart) yield* options.onStart(episode)
        if (episode.ticks >= spec.maxTicks) {
          const error = `no finish within maxTicks (${spec.maxTicks})`
          return yield* lease.write(episodes.finish(id, { status: "failed", error }, lease.fenced), () => true)
        }
        while (episode.status === "running") {
          if (episode.ticks > prepared.episode.ticks) yield* Effect.raceFirst(Effect.sleep(interval), asked(options))
          if (yield* handingOver(options)) return yield* Effect.as(handOver(prepared, progress, false), episode)
          if (yield* lease.renew) return CancelRequested
          const observed = yield* inbox.drain
          const input = { spec, goal: episode.goal, episodeId: id, n: episode.ticks + 1, observed }
          const result = yield* AgentTick.run(services, input)
          const commit = episodes.commitTick(result.tick, endingOf(spec, result), lease.fenced)
          episode = yield* Effect.uninterruptible(lease.write(commit, (stored) => stored.status !== "running"))
          progress.ticks = episode.ticks
          if (options.onTick) yield* options.onTick(result.tick, episode)
        }
        return episode
      })

    /** Runs the loop beside the lease's renewals: a lost lease stops it, a cancel asked elsewhere ends it. */
    const drive = (prepared: Prepared, options: RunOptions) => {
      const { lease } = prepared
      const id = prepared.episode.id
      const interrupted = lease.write(episodes.finish(id, { status: "interrupted" }, lease.fenced), () => true)
      const markInterrupted = interrupted.pipe(
        Effect.catchAll((error) => Effect.logWarning(`episode ${id}: cannot mark it interrupted`, error))
      )
      const cancelled = Effect.zipLeft(interrupted, Effect.logInfo(`episode ${id}: cancelled through another instance`))
      const progress: Progress = { ticks: prepared.episode.ticks }
      return Effect.suspend(
        (): Effect.Effect<Episode, Effect.Effect.Error<ReturnType<typeof loop>> | AlreadyRunning> => {
          if (live.has(id)) return Effect.fail(new AlreadyRunning({ id }))
          live.add(id)
          return Effect.raceFirst(loop(prepared, options, progress), lease.watch).pipe(
            Effect.flatMap((outcome) => (isCancel(outcome) ? cancelled : Effect.succeed(outcome))),
            Effect.onInterrupt(() =>
              Effect.flatMap(handingOver(options), (yes) =>
                yes ? handOver(prepared, progress, true) : markInterrupted
              )
            ),
            Effect.ensuring(Effect.sync(() => live.delete(id))),
            Effect.annotateLogs({ agent: prepared.spec.name, episode: id })
          )
        }
      )
    }

    const together = <E>(prepare: Effect.Effect<ReadonlyArray<Prepared>, E, Scope.Scope>, options: RunOptions) =>
      Effect.scoped(
        Effect.flatMap(prepare, (all) => Effect.forEach(all, (p) => drive(p, options), { concurrency: "unbounded" }))
      )

    /** Runs several agents at once, each in its own episode; returns the episodes as they ended. */
    const runAll = Effect.fn("Agent.runAll")((launches: ReadonlyArray<Launch>, options: RunOptions = {}) =>
      together(Effect.forEach(launches, prepare), options)
    )

    return {
      runAll,
      /** Starts an episode of `spec` toward `goal` and runs it to its end; returns the ended episode. */
      run: Effect.fn("Agent.run")(function* (spec: AgentSpec.AgentSpec, goal?: string, options: RunOptions = {}) {
        const [episode] = yield* together(
          Effect.map(prepare({ spec, goal }), (p) => [p]),
          options
        )
        return episode!
      }),
      /**
       * Continues an interrupted (or crashed) episode after its last committed tick, to its end; `LeaseHeld` while
       * another instance runs it.
       */
      resume: Effect.fn("Agent.resume")(function* (id: string, options: RunOptions = {}) {
        const [episode] = yield* together(
          Effect.map(reopen(id, "resume"), (p) => [p]),
          options
        )
        return episode!
      }),
      /**
       * Continues a running episode whose owner's lease expired (the owner died), to its end; `NotTakenOver` when
       * another instance won it, or it no longer runs.
       */
      takeOver: Effect.fn("Agent.takeOver")(function* (id: string, options: RunOptions = {}) {
        const [episode] = yield* together(
          Effect.map(reopen(id, "takeOver"), (p) => [p]),
          options
        )
        return episode!
      })
    } as const
  })
}) {}

export interface LayerOptions<R> {
  /** Tools beside the built-ins (see `ToolRegistry.layerWith`). */
  readonly tools?: ReadonlyArray<Tool<any, any, R>>
  readonly memory?: MemoryOptions
  readonly bus?: BusOptions
}

/**
 * The runtime with what it runs on (ToolRegistry, VectorMemory embedding through the engine, EventBus,
 * Episodes, EpisodeLeases), all provided too; it needs the engine (`Llm`) and the database (`SqlClient`).
 */
export const layer = <R = never>(options: LayerOptions<R> = {}) =>
  Agent.Default.pipe(
    Layer.provideMerge(ToolRegistry.layerWith(options.tools ?? [])),
    Layer.provideMerge(
      Layer.mergeAll(
        VectorMemory.Default(options.memory).pipe(Layer.provide(layerLlm)),
        EventBus.layer(options.bus ?? {}),
        Episodes.Default,
        EpisodeLeases.Default
      )
    )
  )
