/**
 * The gateway's health endpoints, and the `Health` service over the engine (`layer`):
 * - `GET /health/live`: 200 `{"status":"alive"}`, 503 once shutting down (restart me only if I hang);
 * - `GET /health/ready`: 200 `{"status":"ready"}`, 503 naming the failing critical components, or during shutdown
 *   (send me traffic or not);
 * - `GET /health`: the detailed report (every component, its status, detail and when it was checked), with the
 *   backend kind (`"backend": "ollama" | "simulator"`) and one entry per backend; 200 when ready, else 503.
 * The endpoints read the results of the background checks (Observability/Health.ts) and never wait on a check.
 * A host that serves these routes without `Health` (an app embedding `Gateway.app` alone) gets the same
 * components run once per request, each under its timeout.
 */
import { HttpRouter } from "@effect/platform"
import * as SqlClient from "@effect/sql/SqlClient"
import type { ConfigError } from "effect"
import { Effect, Layer, Option } from "effect"
import { BackendInfo } from "../Lifecycle/BackendChoice.js"
import { Backends } from "../Llm/Backends.js"
import * as Slots from "../Llm/Scheduler/Slots.js"
import {
  type Component,
  type ComponentReport,
  Health,
  Readiness,
  type Report,
  runOnce
} from "../Observability/Health.js"
import * as HealthComponents from "../Observability/HealthComponents.js"
import * as HealthConfig from "../Observability/HealthConfig.js"
import { processComponent } from "../Observability/HealthProcess.js"
import * as RedisHealth from "../Shared/RedisHealth.js"
import * as Respond from "./Respond.js"

/** The five standard components over the engine's backends and, when this process has one, the database. */
export const components = (settings: HealthConfig.Settings) =>
  Effect.gen(function* () {
    const all = Option.match(yield* Effect.serviceOption(Backends), { onNone: () => [], onSome: (b) => b.all })
    const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
    const required = [...settings.requirements.chatModels, ...settings.requirements.embedModels]
    return [
      HealthComponents.backends(all, { required, timeout: settings.timeout }),
      HealthComponents.database(Option.getOrUndefined(sql)),
      HealthComponents.breakers(all),
      HealthComponents.scheduler(all, { capacity: Slots.defaults.capacity }),
      processComponent(settings.dataDir, settings.limits),
      ...(yield* RedisHealth.components(settings.timeout))
    ] satisfies ReadonlyArray<Component>
  })

/**
 * `Health` over the engine: settings from the environment (HealthConfig.ts), `overrides` first. Needs `Backends`;
 * uses the `SqlClient` and the `Readiness` flag when they are provided.
 */
export const layer = (
  overrides: Partial<HealthConfig.Settings> = {}
): Layer.Layer<Health, ConfigError.ConfigError, Backends> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      yield* Backends
      const settings = { ...(yield* HealthConfig.settings), ...overrides }
      return Health.Default(yield* components(settings), settings)
    })
  )

/** The last report, or (without the service) the components run once now. */
const currentReport: Effect.Effect<Report> = Effect.flatMap(
  Effect.serviceOption(Health),
  Option.match({
    onSome: (health) => health.report,
    onNone: () =>
      Effect.flatMap(Effect.orDie(HealthConfig.settings), (settings) =>
        Effect.flatMap(components(settings), (list) => runOnce(list, settings))
      )
  })
)

const alive: Effect.Effect<boolean> = Effect.flatMap(
  Effect.serviceOption(Health),
  Option.match({
    onSome: (health) => health.live,
    onNone: () =>
      Effect.flatMap(
        Effect.serviceOption(Readiness),
        Option.match({ onNone: () => Effect.succeed(true), onSome: (r) => Effect.map(r.shuttingDown.get, (s) => !s) })
      )
  })
)

const reasonOf = (c: ComponentReport) => (typeof c.detail.reason === "string" ? c.detail.reason : c.status)

const failures = (report: Report) =>
  report.failing.map((name) => {
    const c = report.components.find((c) => c.name === name)
    return { name, status: c?.status ?? "unknown", reason: c === undefined ? "not checked yet" : reasonOf(c) }
  })

const componentsBody = (report: Report) =>
  Object.fromEntries(
    report.components.map((c) => {
      const { backends: _hoisted, ...detail } = c.detail
      return [
        c.name,
        { status: c.status, critical: c.critical, checkedAt: c.checkedAt, durationMs: c.durationMs, detail }
      ]
    })
  )

const detailed = Effect.gen(function* () {
  const report = yield* currentReport
  const info = yield* Effect.serviceOption(BackendInfo)
  const backends = report.components.find((c) => c.name === "backends")?.detail.backends ?? []
  return Respond.json(
    {
      status: report.status,
      ready: report.ready,
      shuttingDown: report.shuttingDown,
      ...Option.match(info, {
        onNone: () => ({}),
        onSome: (i) => ({ backend: i.kind, requested: i.requested })
      }),
      backends,
      failing: failures(report),
      components: componentsBody(report)
    },
    report.ready ? 200 : 503
  )
})

const live = Effect.map(alive, (ok) =>
  ok ? Respond.json({ status: "alive" }) : Respond.json({ status: "shutting down" }, 503)
)

const ready = Effect.map(currentReport, (report) =>
  report.ready
    ? Respond.json({ status: "ready" })
    : Respond.json({ status: report.shuttingDown ? "shutting down" : "not ready", failing: failures(report) }, 503)
)

export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/health", detailed),
  HttpRouter.get("/health/live", live),
  HttpRouter.get("/health/ready", ready)
)
