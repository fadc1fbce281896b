/**
 * The standard health components over the engine: backends (reachable, required models present), circuit
 * breakers, the scheduler's queues, and the database. Like Sampler.ts, this module declares the small shapes it
 * reads (`BackendSource`), which the engine's `Backends.all` already fits, so Observability never imports Llm.
 *
 * - backends (critical): down when no backend answers, or when a required model is on no reachable backend;
 *   degraded when some backend does not answer or lacks a required model another one serves.
 * - breakers: degraded when any breaker is not closed, down when all are open.
 * - scheduler: degraded when a queue is `queueDegradedShare` full or its oldest caller waited `queueWaitDegraded`;
 *   down when a queue is full (callers blocked) or the oldest waited `queueWaitDown`.
 * - database: a read (`SELECT 1`) and a write (an upsert in `health_probe`, created if absent), on SQLite or
 *   PostgreSQL (`kind`); ok with `enabled: false` when the process has no database. Critical on SQLite (the file is
 *   this instance's own: a broken one should take it out of rotation), not on PostgreSQL: a shared database that
 *   does not answer fails every instance alike, and taking them all out of rotation would also stop what still
 *   works without it (calls with environment keys, model management); the component still reports down.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect, Either, Metric } from "effect"
import { normalizeName } from "../Domain/ModelName.js"
import type { Component, Result, Status } from "./Health.js"
import { defaults } from "./HealthConfig.js"
import * as Metrics from "./Metrics.js"

/** One backend as health reads it (fits `Backends.Backend`). */
export interface BackendSource {
  readonly url: string
  readonly client: {
    readonly version: Effect.Effect<{ readonly version: string }, { readonly message: string }>
    readonly list: Effect.Effect<
      { readonly models: ReadonlyArray<{ readonly name: string }> },
      { readonly message: string }
    >
  }
  readonly breaker: { readonly state: Effect.Effect<"closed" | "open" | "half-open"> }
  readonly slots: {
    readonly snapshot: Effect.Effect<{
      readonly limit: number
      readonly inFlight: number
      readonly queued: number
      readonly blocked: number
      readonly oldestWaitMs: number
    }>
  }
}

/** One backend in the report (`/health`'s `backends`). */
export interface BackendReport {
  readonly url: string
  readonly reachable: boolean
  readonly breaker: "closed" | "open" | "half-open"
  readonly inFlight: number
  readonly slots: { readonly limit: number; readonly queued: number; readonly oldestWaitMs: number }
  readonly version?: string
  /** Why it does not answer. */
  readonly error?: string
  /** How many models it lists, and the required ones it lacks (when it answered `/api/tags`). */
  readonly models?: number
  readonly missing?: ReadonlyArray<string>
}

const probeBackend = (backend: BackendSource, required: ReadonlyArray<string>, timeout: Duration.Duration) =>
  Effect.gen(function* (): Effect.fn.Return<BackendReport> {
    const bounded = <A>(effect: Effect.Effect<A, { readonly message: string }>) =>
      effect.pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => ({ message: `timed out after ${Duration.format(timeout)}` })
        }),
        Effect.either
      )
    const [version, list] = yield* Effect.all([bounded(backend.client.version), bounded(backend.client.list)], {
      concurrency: 2
    })
    const breaker = yield* backend.breaker.state
    const slots = yield* backend.slots.snapshot
    const served = Either.isRight(list) ? new Set(list.right.models.map((m) => normalizeName(m.name))) : undefined
    const reachable = Either.isRight(version)
    return {
      url: backend.url,
      reachable,
      breaker,
      inFlight: slots.inFlight,
      slots: { limit: slots.limit, queued: slots.queued, oldestWaitMs: slots.oldestWaitMs },
      ...(Either.isRight(version) ? { version: version.right.version } : { error: version.left.message }),
      ...(served === undefined ? {} : { models: served.size, missing: required.filter((m) => !served.has(m)) })
    }
  })

/** The `backends` component; `required` model names are compared as Ollama does. */
export const backends = (
  sources: ReadonlyArray<BackendSource>,
  options: { readonly required: ReadonlyArray<string>; readonly timeout: Duration.DurationInput }
): Component => {
  const required = [...new Set(options.required.map(normalizeName))]
  // below the component's own timeout, so one hanging backend is reported as such and the others still count
  const timeout = Duration.times(Duration.decode(options.timeout), 0.75)
  return {
    name: "backends",
    critical: true,
    check: Effect.map(
      Effect.forEach(sources, (b) => probeBackend(b, required, timeout), { concurrency: "unbounded" }),
      (list): Result => {
        const up = list.filter((b) => b.reachable)
        const missing = required.filter((m) => !up.some((b) => b.missing !== undefined && !b.missing.includes(m)))
        const partial = up.some((b) => (b.missing?.length ?? 0) > 0)
        const status: Status =
          up.length === 0 || missing.length > 0 ? "down" : up.length < list.length || partial ? "degraded" : "ok"
        const reason =
          up.length === 0
            ? `no backend answers (${list.map((b) => `${b.url}: ${b.error ?? "no answer"}`).join("; ")})`
            : missing.length > 0
              ? `required models on no reachable backend: ${missing.join(", ")} (ollama pull them)`
              : up.length < list.length
                ? `not answering: ${list
                    .filter((b) => !b.reachable)
                    .map((b) => b.url)
                    .join(", ")}`
                : partial
                  ? "some backends lack a required model"
                  : undefined
        return {
          status,
          detail: { reachable: up.length, total: list.length, missing, backends: list, ...(reason ? { reason } : {}) }
        }
      }
    )
  }
}

/** The `breakers` component: one state per backend. */
export const breakers = (sources: ReadonlyArray<BackendSource>): Component => ({
  name: "breakers",
  critical: false,
  check: Effect.map(
    Effect.forEach(sources, (b) => Effect.map(b.breaker.state, (state) => ({ url: b.url, state }))),
    (states): Result => {
      const open = states.filter((s) => s.state === "open")
      const notClosed = states.filter((s) => s.state !== "closed")
      const status: Status =
        states.length > 0 && open.length === states.length ? "down" : notClosed.length > 0 ? "degraded" : "ok"
      const reason =
        notClosed.length === 0
          ? undefined
          : `breakers not closed: ${notClosed.map((s) => `${s.url} ${s.state}`).join(", ")}`
      return {
        status,
        detail: { open: open.length, total: states.length, breakers: states, ...(reason ? { reason } : {}) }
      }
    }
  )
})

export interface SchedulerOptions {
  /** Callers one backend's queue holds (Slots' capacity). */
  readonly capacity: number
  readonly degradedShare?: number | undefined
  readonly waitDegraded?: Duration.DurationInput | undefined
  readonly waitDown?: Duration.DurationInput | undefined
}

const queueStatus = (
  s: { readonly queued: number; readonly blocked: number; readonly oldestWaitMs: number },
  o: SchedulerOptions
): Status => {
  const waitDown = Duration.toMillis(o.waitDown ?? defaults.queueWaitDown)
  const waitDegraded = Duration.toMillis(o.waitDegraded ?? defaults.queueWaitDegraded)
  if (s.blocked > 0 || s.queued >= o.capacity || s.oldestWaitMs >= waitDown) return "down"
  if (s.queued >= o.capacity * (o.degradedShare ?? defaults.queueDegradedShare) || s.oldestWaitMs >= waitDegraded)
    return "degraded"
  return "ok"
}

/** The `scheduler` component: each backend's queue depth against its capacity, and its oldest wait. */
export const scheduler = (sources: ReadonlyArray<BackendSource>, options: SchedulerOptions): Component => ({
  name: "scheduler",
  critical: false,
  check: Effect.map(
    Effect.forEach(sources, (b) =>
      Effect.map(b.slots.snapshot, (s) => ({
        url: b.url,
        ...s,
        capacity: options.capacity,
        status: queueStatus(s, options)
      }))
    ),
    (queues): Result => {
      const status: Status = queues.some((q) => q.status === "down")
        ? "down"
        : queues.some((q) => q.status === "degraded")
          ? "degraded"
          : "ok"
      const busy = queues.filter((q) => q.status !== "ok")
      const reason =
        busy.length === 0
          ? undefined
          : `queues backed up: ${busy.map((q) => `${q.url} ${q.queued}/${q.capacity} queued, oldest ${q.oldestWaitMs} ms`).join("; ")}`
      return {
        status,
        detail: {
          queued: queues.reduce((n, q) => n + q.queued, 0),
          oldestWaitMs: queues.reduce((n, q) => Math.max(n, q.oldestWaitMs), 0),
          queues: queues.map(({ status: _s, ...q }) => q),
          ...(reason ? { reason } : {})
        }
      }
    }
  )
})

/**
 * The `database` component: a read and a write, on SQLite or PostgreSQL (`detail.kind`); `sql` absent means this
 * process runs without a database. With PostgreSQL each probe also sets `sluice_shared_store_up{store="postgres"}`.
 */
export const database = (sql: SqlClient.SqlClient | undefined): Component => ({
  name: "database",
  critical: sql === undefined || sql.onDialectOrElse({ pg: () => false, orElse: () => true }),
  check: sql === undefined ? Effect.succeed<Result>({ status: "ok", detail: { enabled: false } }) : probe(sql)
})

const probe = (sql: SqlClient.SqlClient): Effect.Effect<Result> => {
  const kind = sql.onDialectOrElse({ pg: () => "postgres" as const, orElse: () => "sqlite" as const })
  const up = (answers: boolean) =>
    kind === "postgres" ? Metric.set(Metric.tagged(Metrics.sharedStoreUp, "store", kind), answers ? 1 : 0) : Effect.void
  return Effect.gen(function* () {
    yield* sql`SELECT 1 AS one`
    yield* sql`CREATE TABLE IF NOT EXISTS health_probe (id INTEGER PRIMARY KEY, checked_at BIGINT NOT NULL)`
    const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
    yield* sql`INSERT INTO health_probe (id, checked_at) VALUES (1, ${now})
      ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`
    return { status: "ok", detail: { enabled: true, kind, read: true, write: true } } satisfies Result
  }).pipe(
    Effect.tap(() => up(true)),
    Effect.catchAll((e) =>
      Effect.as(up(false), {
        status: "down",
        detail: { enabled: true, kind, reason: `the database does not answer: ${e.message}` }
      } satisfies Result)
    ),
    Effect.onInterrupt(() => up(false))
  )
}
