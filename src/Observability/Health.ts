/**
 * Health: liveness, readiness and a detailed report over named components (ARCHITECTURE.md §8).
 *
 * Choices:
 * - Checks run in a scoped background fiber: once while the layer starts (so the first request already sees
 *   results), then every `interval`. The endpoints read the last results and never run a check themselves, so a
 *   hanging check cannot block `/health`: each check runs under `timeout` and is reported `down` ("timed out")
 *   when it passes; the check is disconnected, so even one that ignores interruption does not hold the round.
 * - Each component is `critical` or not. Ready = not shutting down and no critical component down; any component
 *   not ok makes the overall status `degraded`, a critical one down makes it `down`.
 * - Results are metrics too: `sluice_health_status{component}` and `sluice_ready` after every round.
 * - Shutting down: the flag is the `Readiness` service when one is provided (so the shutdown code can own it),
 *   else a flag of Health's own, set with `markShuttingDown`. Either way liveness and readiness fail at once.
 *
 * The standard components (backends, database, breakers, scheduler, process) are in HealthComponents.ts and
 * HealthProcess.ts; this module knows nothing of the engine.
 */
import { Cause, Clock, Context, Duration, Effect, Layer, Option, Ref } from "effect"
import { defaults } from "./HealthConfig.js"
import * as Recorders from "./Recorders.js"

export type Status = "ok" | "degraded" | "down"

/** What a check says. A component that is not ok puts a sentence a human can act on in `detail.reason`. */
export interface Result {
  readonly status: Status
  readonly detail: Readonly<Record<string, unknown>>
}

/** A named check. A failure or a defect of `check` counts as `down` with the error as the reason. */
export interface Component {
  readonly name: string
  /** A critical component that is down makes Sluice not ready. */
  readonly critical: boolean
  readonly check: Effect.Effect<Result, unknown>
}

export interface ComponentReport extends Result {
  readonly name: string
  readonly critical: boolean
  /** When the check ended (ISO 8601). */
  readonly checkedAt: string
  readonly durationMs: number
}

export interface Report {
  readonly status: Status
  readonly ready: boolean
  readonly shuttingDown: boolean
  /** In the order the components were given; a component not checked yet is absent. */
  readonly components: ReadonlyArray<ComponentReport>
  /** Critical components that are down (or not checked yet): why Sluice is not ready. */
  readonly failing: ReadonlyArray<string>
}

export interface Options {
  /** Between two rounds of checks; default 10 seconds. */
  readonly interval?: Duration.DurationInput | undefined
  /** Each check at most; default 2 seconds, then the component is down ("timed out"). */
  readonly timeout?: Duration.DurationInput | undefined
}

/** The shutting-down flag, when the code that shuts Sluice down owns it (e.g. the drain's own flag). */
export class Readiness extends Context.Tag("sluice/Readiness")<
  Readiness,
  { readonly shuttingDown: Ref.Ref<boolean> }
>() {
  /** A fresh flag, false until set. */
  static readonly layer: Layer.Layer<Readiness> = Layer.effect(
    Readiness,
    Effect.map(Ref.make(false), (shuttingDown) => ({ shuttingDown }))
  )
  /** An existing flag, e.g. `Layer.effect(Readiness, Effect.map(Drain, (d) => ({ shuttingDown: d.draining })))`. */
  static readonly fromRef = (shuttingDown: Ref.Ref<boolean>): Layer.Layer<Readiness> =>
    Layer.succeed(Readiness, { shuttingDown })
}

/** A component result that is down, with `reason`. */
export const down = (reason: string, detail: Readonly<Record<string, unknown>> = {}): Result => ({
  status: "down",
  detail: { ...detail, reason }
})

const reasonOf = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

/** Runs one component under `timeout`; never fails, never waits past the timeout. */
export const runComponent = (component: Component, timeout: Duration.DurationInput) =>
  Effect.gen(function* () {
    const started = yield* Clock.currentTimeMillis
    const result = yield* component.check.pipe(
      Effect.catchAllCause((cause) => Effect.succeed(down(reasonOf(cause)))),
      Effect.disconnect,
      Effect.timeoutTo({
        duration: timeout,
        onSuccess: (r): Result => r,
        onTimeout: () => down(`timed out after ${Duration.format(timeout)}`)
      })
    )
    const ended = yield* Clock.currentTimeMillis
    return {
      name: component.name,
      critical: component.critical,
      status: result.status,
      detail: result.detail,
      checkedAt: new Date(ended).toISOString(),
      durationMs: ended - started
    } satisfies ComponentReport
  })

const worst = (statuses: ReadonlyArray<Status>): Status =>
  statuses.includes("down") ? "down" : statuses.includes("degraded") ? "degraded" : "ok"

/** The report over the latest results of `components`. */
export const reportOf = (
  components: ReadonlyArray<Component>,
  results: ReadonlyMap<string, ComponentReport>,
  shuttingDown: boolean
): Report => {
  const reports = components.flatMap((c) => {
    const r = results.get(c.name)
    return r === undefined ? [] : [r]
  })
  const failing = components
    .filter((c) => c.critical && (results.get(c.name)?.status ?? "down") === "down")
    .map((c) => c.name)
  const overall = worst(reports.map((r) => (r.critical || r.status !== "down" ? r.status : "degraded")))
  return {
    status: failing.length > 0 ? "down" : overall,
    ready: !shuttingDown && failing.length === 0,
    shuttingDown,
    components: reports,
    failing
  }
}

/** Runs every component once, concurrently, and reports (for hosts that do not run the background service). */
export const runOnce = (components: ReadonlyArray<Component>, options: Options = {}): Effect.Effect<Report> =>
  Effect.map(
    Effect.forEach(components, (c) => runComponent(c, options.timeout ?? defaults.timeout), {
      concurrency: "unbounded"
    }),
    (reports) => reportOf(components, new Map(reports.map((r) => [r.name, r])), false)
  )

const shuttingDownFlag = Effect.flatMap(
  Effect.serviceOption(Readiness),
  Option.match({
    onNone: () => Ref.make(false),
    onSome: (readiness) => Effect.succeed(readiness.shuttingDown)
  })
)

const make = (components: ReadonlyArray<Component>, options: Options = {}) =>
  Effect.gen(function* () {
    const timeout = options.timeout ?? defaults.timeout
    const interval = options.interval ?? defaults.interval
    const shuttingDown = yield* shuttingDownFlag
    const results = yield* Ref.make<ReadonlyMap<string, ComponentReport>>(new Map())
    const report = Effect.map(Effect.all([Ref.get(results), Ref.get(shuttingDown)]), ([r, s]) =>
      reportOf(components, r, s)
    )
    const runOne = (component: Component) =>
      Effect.flatMap(runComponent(component, timeout), (r) =>
        Effect.zipRight(
          Ref.update(results, (m) => new Map(m).set(r.name, r)),
          Recorders.setHealth(r.name, r.status)
        )
      )
    const round = Effect.forEach(components, runOne, { concurrency: "unbounded", discard: true }).pipe(
      Effect.zipRight(Effect.flatMap(report, (r) => Recorders.setReady(r.ready))),
      Effect.withSpan("Health.round")
    )
    yield* round
    yield* Effect.sleep(interval).pipe(Effect.zipRight(round), Effect.forever, Effect.forkScoped)

    return {
      /** The latest results; never runs a check. */
      report,
      /** Alive unless shutting down. */
      live: Effect.map(Ref.get(shuttingDown), (s) => !s),
      /** Runs every check now and returns the new report (tests, an admin command). */
      checkNow: Effect.zipRight(round, report),
      /** Liveness and readiness fail from now on. */
      markShuttingDown: Effect.zipRight(Ref.set(shuttingDown, true), Recorders.setReady(false)),
      components: components.map((c) => c.name)
    } as const
  })

/**
 * The health service: `Health.Default(components, options)` runs `components` in the background for the life of
 * its scope. The gateway's standard components are wired in `Http/HealthRoutes.ts` (`HealthRoutes.layer`).
 */
export class Health extends Effect.Service<Health>()("sluice/Health", {
  scoped: (components: ReadonlyArray<Component>, options?: Options) => make(components, options)
}) {}
