/**
 * `sluice agent`: run agent specs toward a goal, resume an interrupted (or killed) episode, list and show
 * episodes. `run` and `resume` take the backend flags of `serve` (`--ollama`, `--backend`); `list` and `show`
 * only read the database. Progress is one line per committed tick; a failed episode exits with status 1.
 * `resume` of an episode whose lease another instance holds (a killed run's lease outlives it by up to
 * SLUICE_AGENT_LEASE) waits once until that lease expires, then tries again: a live owner keeps renewing it, so
 * the second refusal says where the episode runs.
 */
import { Args, Command, Options } from "@effect/cli"
import { Clock, Console, Duration, Effect, Layer, Option } from "effect"
import * as Agent from "../Agent/Agent.js"
import * as AgentSpec from "../Agent/AgentSpec.js"
import { Episodes } from "../Agent/Episodes.js"
import { EpisodeNotFound } from "../Agent/EpisodesError.js"
import type { Episode, HotStatus, Tick } from "../Domain/Episode.js"
import * as Store from "../Store/Store.js"
import { table } from "./Archive.js"
import * as BackendFlags from "./BackendFlags.js"

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`)

/** One line per committed tick: agent, tick n/max, tool calls, tokens, outcome. */
export const tickLine = (tick: Tick, episode: Episode): string => {
  const tools = tick.toolCalls.map((c) => (c.error === undefined ? c.name : `${c.name}!`)).join(",") || "-"
  const max = (episode.spec as { maxTicks?: number }).maxTicks
  const outcome = tick.error === undefined ? tick.outcome : `${tick.outcome} (${clip(tick.error, 100)})`
  return `${episode.agent}  tick ${tick.n}${max === undefined ? "" : `/${max}`}  tools ${tools}  tokens ${tick.tokens}  ${outcome}`
}

const endLine = (episode: Episode): string =>
  `episode ${episode.id} (${episode.agent}) ${episode.status} after ${episode.ticks} tick(s), ${episode.tokens} tokens` +
  (episode.result === undefined ? "" : `: ${episode.result}`) +
  (episode.error === undefined ? "" : `: ${episode.error}`)

const progress: Agent.RunOptions = {
  onStart: (episode) =>
    Console.log(
      episode.ticks === 0
        ? `episode ${episode.id} started: ${episode.agent}, goal "${episode.goal}"`
        : `episode ${episode.id} resumed at tick ${episode.ticks + 1}: ${episode.agent}, goal "${episode.goal}"`
    ),
  onTick: (tick, episode) => Console.log(tickLine(tick, episode))
}

const report = (ended: ReadonlyArray<Episode>) =>
  Effect.gen(function* () {
    for (const episode of ended) yield* Console.log(endLine(episode))
    const failed = ended.filter((e) => e.status === "failed")
    if (failed.length > 0) return yield* Effect.fail(new Error(`${failed.length} episode(s) failed`))
  })

const runtime = (flags: BackendFlags.Flags & { readonly dataDir: string }) =>
  Agent.layer().pipe(
    Layer.provide(Layer.merge(Store.layerFromConfig({ dataDir: flags.dataDir }), BackendFlags.engineLayer(flags)))
  )

const backendOptions = { dataDir: BackendFlags.dataDir, ollama: BackendFlags.ollama, backend: BackendFlags.backend }

const specs = Args.text({ name: "spec.json" }).pipe(
  Args.withDescription("agent spec files (JSON); several run at once and can message each other"),
  Args.atLeast(1)
)
const goal = Options.text("goal").pipe(
  Options.withDescription("the goal of every agent started (default: each spec's `goal`)"),
  Options.optional
)

const run = Command.make("run", { specs, goal, ...backendOptions }, (flags) =>
  Effect.gen(function* () {
    const loaded = yield* Effect.forEach(flags.specs, AgentSpec.fromFile)
    const launches = loaded.map((spec) => ({ spec, goal: Option.getOrUndefined(flags.goal) }))
    const ended = yield* Effect.flatMap(Agent.Agent, (agent) => agent.runAll(launches, progress)).pipe(
      Effect.provide(runtime(flags))
    )
    yield* report(ended)
  })
).pipe(Command.withDescription("Run agent specs toward a goal, one episode each, printing a line per tick"))

const episodeId = Args.text({ name: "episode" }).pipe(Args.withDescription("the episode id"))

/** Resumes `id`; while another instance holds its lease, waits once for the lease to expire. */
const resumeOnce = (agent: Agent.Agent, id: string) =>
  agent.resume(id, progress).pipe(
    Effect.catchTag("LeaseHeld", (held) =>
      Effect.gen(function* () {
        const wait = held.expiresAt + 100 - (yield* Clock.currentTimeMillis)
        yield* Console.log(
          `episode ${id} is leased by ${held.owner} until ${time(held.expiresAt)}: waiting for the lease to expire`
        )
        yield* Effect.sleep(Duration.millis(Math.max(0, wait)))
        return yield* agent.resume(id, progress)
      })
    )
  )

const resume = Command.make("resume", { episode: episodeId, ...backendOptions }, (flags) =>
  Effect.gen(function* () {
    const ended = yield* Effect.flatMap(Agent.Agent, (agent) => resumeOnce(agent, flags.episode)).pipe(
      Effect.provide(runtime(flags))
    )
    yield* report([ended])
  })
).pipe(Command.withDescription("Continue an interrupted or killed episode after its last committed tick"))

/** Runs `work` against the database of `dataDir`, or says there is none (without creating it). */
const withEpisodes = <A, E>(dataDir: string, work: (episodes: Episodes) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const at = yield* Store.location(dataDir)
    if (!Store.exists(at)) return yield* Console.log(`no database at ${Store.describe(at)}: no episodes`)
    yield* Effect.flatMap(Episodes, work).pipe(
      Effect.provide(Episodes.Default.pipe(Layer.provide(Store.layerAt(at, { dataDir }))))
    )
  })

const time = (ms: number | undefined) => (ms === undefined ? "-" : new Date(ms).toISOString())

const agentFilter = Options.text("agent").pipe(Options.withDescription("only this agent's episodes"), Options.optional)
const statusFilter = Options.choice("status", ["running", "completed", "failed", "interrupted"]).pipe(
  Options.withDescription("only episodes with this status"),
  Options.optional
)
const limit = Options.integer("limit").pipe(Options.withDescription("at most this many"), Options.withDefault(50))

const list = Command.make(
  "list",
  { dataDir: BackendFlags.dataDir, agent: agentFilter, status: statusFilter, limit },
  (flags) =>
    withEpisodes(flags.dataDir, (episodes) =>
      Effect.gen(function* () {
        const found = yield* episodes.list({
          agent: Option.getOrUndefined(flags.agent),
          status: Option.getOrUndefined(flags.status) as HotStatus | undefined,
          limit: flags.limit
        })
        if (found.length === 0) return yield* Console.log("no episodes")
        const row = (e: Episode) => [
          ...[e.id, e.agent, e.status, String(e.ticks), String(e.tokens), time(e.createdAt)],
          clip(e.result ?? e.error ?? "", 60)
        ]
        yield* Console.log(
          table([["EPISODE", "AGENT", "STATUS", "TICKS", "TOKENS", "CREATED", "RESULT"], ...found.map(row)])
        )
      })
    )
).pipe(Command.withDescription("List episodes, newest first"))

const json = Options.boolean("json").pipe(Options.withDescription("print the episode and its ticks as JSON"))

const describe = (episode: Episode, ticks: ReadonlyArray<Tick>): string => {
  const head = [
    ["episode", episode.id],
    ["agent", episode.agent],
    ["goal", episode.goal],
    ["status", episode.status],
    ["ticks", String(episode.ticks)],
    ["tokens", String(episode.tokens)],
    ["created", time(episode.createdAt)],
    ["ended", time(episode.endedAt)],
    ...(episode.result === undefined ? [] : [["result", episode.result]]),
    ...(episode.error === undefined ? [] : [["error", episode.error]])
  ].map(([k, v]) => `${`${k}:`.padEnd(9)}${v}`)
  const row = (t: Tick) => [
    ...[String(t.n), t.outcome, t.toolCalls.map((c) => c.name).join(",") || "-", String(t.tokens)],
    ...[String(t.durationMs), String((t.inputs as ReadonlyArray<unknown>).length), clip(t.error ?? "", 60)]
  ]
  const rows = table([["TICK", "OUTCOME", "TOOLS", "TOKENS", "MS", "MESSAGES IN", "ERROR"], ...ticks.map(row)])
  return [...head, "", rows].join("\n")
}

const show = Command.make("show", { episode: episodeId, dataDir: BackendFlags.dataDir, json }, (flags) =>
  withEpisodes(flags.dataDir, (episodes) =>
    Effect.gen(function* () {
      const found = yield* episodes.get(flags.episode)
      if (Option.isNone(found)) return yield* new EpisodeNotFound({ id: flags.episode, where: "hot" })
      const { episode, ticks } = found.value
      yield* Console.log(flags.json ? JSON.stringify({ episode, ticks }, null, 2) : describe(episode, ticks))
    })
  )
).pipe(Command.withDescription("Show an episode and its ticks"))

export const agent = Command.make("agent").pipe(
  Command.withDescription("Run agent specs toward a goal, resume, list and show their episodes"),
  Command.withSubcommands([run, resume, list, show])
)
