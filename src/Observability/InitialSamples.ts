/**
 * The first samples of Sluice's metrics, recorded when the gateway starts, so that `/metrics` shows a value for
 * every series a dashboard or an alert rule expects before any traffic: `rate()` over a series that does not exist
 * yet is no data, not 0, and an alert on it cannot fire.
 *
 * Choices:
 * - Every declared metric without labels gets its series from `Metrics.catalog`, so a metric added to `Metrics.ts`
 *   is covered with no change here. Effect's `register` creates a series without an update (a counter at 0, a
 *   histogram with zero counts, a gauge at 0 until its sampler or its event sets it) and never overwrites a value.
 * - A labelled metric gets its series for the label values known at start: any metric labelled only by `backend`
 *   (or only by `priority`) for each configured backend (priority class), so new per-backend metrics are covered
 *   too; and, for the metrics below, the closed sets of Sluice's own vocabulary: call outcomes, the engine methods
 *   of the configured (required) models, fallback strategies, rate-limit and budget limits, and each gateway route
 *   with the method it serves (status 200). Values known only later (error kinds, other statuses, agents, topics)
 *   appear with their first event.
 * - Label values go through `Labels.ts` as the recorders' do, so these are the series the recorders move.
 * - `sluice_build_info` (Sluice's version from package.json, Node's, Effect's) is set with them;
 *   `sluice_startup_duration_seconds` once the gateway is built (`around`).
 */
import { Effect, Layer } from "effect"
import pkg from "../../package.json" with { type: "json" }
import { BudgetExceeded, RateLimited } from "../Domain/LlmError.js"
import * as Labels from "./Labels.js"
import * as Metrics from "./Metrics.js"
import * as Recorders from "./Recorders.js"

/** The label values the gateway knows when it starts. */
export interface Known {
  /** Backend origins, as configured. */
  readonly backends: ReadonlyArray<string>
  /** Chat/generate models the config names (`SLUICE_REQUIRED_MODELS`); may be empty. */
  readonly chatModels: ReadonlyArray<string>
  /** Embedding models the config names (`SLUICE_REQUIRED_EMBED_MODELS`); may be empty. */
  readonly embedModels: ReadonlyArray<string>
  /** Gateway routes, each with a method it serves. */
  readonly routes: ReadonlyArray<{ readonly route: string; readonly method: string }>
  /** The scheduler's priority classes. */
  readonly priorities: ReadonlyArray<string>
}

type Labelled = Readonly<Record<string, string>>

const outcomes = Object.keys({ ok: 0, fallback: 0, error: 0, interrupted: 0 } satisfies Record<Recorders.Outcome, 0>)

/** What `Labels.strategy` makes of a fallback's `Served`. */
const strategies = ["stale", "default", "alternate"]

const engineMethods = { chat: ["chat", "generate"], embed: ["embed"] } as const

/** Every combination of the given values, one record per combination. */
const combinations = (values: Readonly<Record<string, ReadonlyArray<string>>>): Array<Labelled> =>
  Object.entries(values).reduce<Array<Labelled>>(
    (acc, [label, vs]) => acc.flatMap((labels) => vs.map((v) => ({ ...labels, [label]: v }))),
    [{}]
  )

const register = (metric: Metrics.Instrument, series: ReadonlyArray<Labelled>): void => {
  for (const labels of series) Labels.tag(metric, labels).register()
}

/** Registers every declared metric that has no labels. */
export const unlabelled: Effect.Effect<void> = Effect.sync(() => {
  for (const d of Metrics.catalog) if (d.labels.length === 0) d.metric.register()
})

/** The series of labelled metrics whose label values are known now. */
const seriesOf = (known: Known) => {
  const backends = known.backends.map(Labels.backend)
  const byModel = [
    ...known.chatModels.map((model) => [model, engineMethods.chat] as const),
    ...known.embedModels.map((model) => [model, engineMethods.embed] as const)
  ].map(([model, endpoints]) => ({ model: Labels.model(model), endpoints }))
  const models = byModel.map((m) => m.model)
  const onlyBy: Record<string, ReadonlyArray<Labelled>> = {
    backend: combinations({ backend: backends }),
    priority: combinations({ priority: known.priorities })
  }
  const generic = Metrics.catalog.flatMap((d) => {
    const values = d.labels.length === 1 ? onlyBy[d.labels[0]!] : undefined
    return values === undefined ? [] : [[d.metric, values] as const]
  })
  const specific: ReadonlyArray<readonly [Metrics.Instrument, ReadonlyArray<Labelled>]> = [
    [
      Metrics.requests,
      byModel.flatMap(({ endpoints, model }) =>
        combinations({ model: [model], endpoint: endpoints, priority: known.priorities, outcome: outcomes })
      )
    ],
    [Metrics.tokensIn, combinations({ backend: backends, model: models })],
    [Metrics.tokensOut, combinations({ backend: backends, model: models })],
    [Metrics.fallbacks, combinations({ endpoint: Object.values(engineMethods).flat(), strategy: strategies })],
    [Metrics.rateLimitRejections, combinations({ backend: backends, limit: RateLimited.fields.limit.literals })],
    [Metrics.budgetExhausted, combinations({ limit: BudgetExceeded.fields.limit.literals })],
    [Metrics.httpRequests, known.routes.map(({ method, route }) => ({ route, method, status: "200" }))]
  ]
  return [...generic, ...specific]
}

/** Registers the labelled series known now (see the module comment). */
export const labelled = (known: Known): Effect.Effect<void> =>
  Effect.sync(() => {
    for (const [metric, series] of seriesOf(known)) register(metric, series)
  })

/** Build info, every unlabelled metric, and the labelled series known now. */
export const record = (known: Known): Effect.Effect<void> =>
  Effect.all([Recorders.recordBuildInfo(pkg.version), unlabelled, labelled(known)], { discard: true })

/** `sluice_startup_duration_seconds`: from the process's start until now. */
export const startupDone: Effect.Effect<void> = Effect.suspend(() => Recorders.recordStartup(process.uptime() * 1000))

/**
 * Wraps the gateway's layer: the first samples are recorded before it builds (so before its server answers), and
 * the startup duration once it is built.
 */
export const around =
  <E2, R2>(known: Effect.Effect<Known, E2, R2>) =>
  <A, E, R>(self: Layer.Layer<A, E, R>): Layer.Layer<A, E | E2, R | R2> =>
    self.pipe(
      Layer.provideMerge(Layer.effectDiscard(Effect.flatMap(known, record))),
      Layer.tap(() => startupDone)
    )
