/**
 * Startup validation (ARCHITECTURE.md §8): named checks, each `fatal` or `warning`, run before serving.
 * `validate` returns the table; `run` prints it and fails with `StartupFailed`, listing every failed fatal check
 * with what to do, when any fatal check failed. `sluice validate` prints the whole table; `serve` prints only the
 * checks that did not pass.
 *
 * Choices:
 * - Facts several checks share (what the backends answer, what the database holds) are gathered once, first,
 *   each probe under its own timeout; then every check runs concurrently under `checkTimeout`. A check that fails,
 *   dies or times out counts as failed, with the reason.
 * - A check can be skipped (nothing to check: no database yet, no model required); a skip never fails startup.
 * - Validation changes nothing: the database is opened read-only (migrations are applied by `serve`), the data
 *   directory gets one probe file, written and removed, the port is bound and released at once.
 * - Every result is a metric too: `sluice_startup_check{check,severity}`.
 */
import { Cause, Config as EffectConfig, Console, Data, Duration, Effect, Option } from "effect"
import * as Config from "../Config.js"
import * as EngineConfig from "../Llm/EngineConfig.js"
import * as HealthConfig from "../Observability/HealthConfig.js"
import * as Recorders from "../Observability/Recorders.js"
import * as Telemetry from "../Observability/Telemetry.js"
import { decodeHost } from "../Ollama/Host.js"
import { systemChecks } from "./Checks.js"
import { backendChecks, gatherBackends } from "./ChecksBackends.js"
import { databaseChecks, gatherDatabase } from "./ChecksDatabase.js"
import { gatherShared, sharedChecks } from "./ChecksShared.js"

export type Severity = "fatal" | "warning"

/** What a check found; `fix` says what to do when it did not pass. */
export interface Outcome {
  readonly ok: boolean
  readonly detail: string
  readonly fix?: string | undefined
  /** Nothing to check here; never fails startup. */
  readonly skipped?: boolean | undefined
}

export interface Check {
  readonly name: string
  readonly severity: Severity
  readonly run: Effect.Effect<Outcome, unknown>
}

/** One line of the table. */
export interface Row {
  readonly name: string
  readonly severity: Severity
  readonly result: "pass" | "fail" | "skip"
  readonly detail: string
  readonly fix?: string | undefined
}

/** What the checks validate: the flags and settings `serve` would run with. */
export interface Context {
  readonly host: string
  readonly port: number
  readonly mode: Config.BackendMode
  /** The Ollama URLs, decoded (OLLAMA_HOST-style input is accepted and decoded by `contextFrom`). */
  readonly urls: ReadonlyArray<string>
  readonly dataDir: string
  readonly engine: EngineConfig.EngineConfig
  readonly requirements: HealthConfig.Requirements
  readonly limits: HealthConfig.Limits
  readonly health: { readonly interval: Duration.Duration; readonly timeout: Duration.Duration }
  /** Whether API keys are configured (`SLUICE_API_KEY` or `SLUICE_API_KEYS`). */
  readonly apiKeys: boolean
  /** The OTLP endpoint when telemetry export is configured. */
  readonly telemetryUrl: Option.Option<string>
  /**
   * The caller binds the port itself right after the checks (`serve`): the port check then does not bind it for
   * an instant (a client connecting in that instant would be reset, not answered) and the caller reports its own
   * listen error as the check's failure (`Checks.listenFailed`).
   */
  readonly bindsPort?: boolean | undefined
}

export interface Options {
  /** Each check at most (default 5 seconds); each probe of the shared facts at most (default 3 seconds). */
  readonly checkTimeout?: Duration.DurationInput | undefined
  readonly probeTimeout?: Duration.DurationInput | undefined
}

export const defaults = { checkTimeout: Duration.seconds(5), probeTimeout: Duration.seconds(3) } as const

/** Some fatal checks failed: startup stops. */
export class StartupFailed extends Data.TaggedError("StartupFailed")<{ readonly failed: ReadonlyArray<Row> }> {
  override get message() {
    const lines = this.failed.map(
      (r) => `  - ${r.name}: ${r.detail}${r.fix === undefined ? "" : `\n      what to do: ${r.fix}`}`
    )
    const count = this.failed.length
    return [`startup validation failed (${count} fatal check${count === 1 ? "" : "s"}):`, ...lines].join("\n")
  }
}

const reasonOf = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

const runCheck = (check: Check, timeout: Duration.DurationInput) =>
  check.run.pipe(
    Effect.catchAllCause((cause) =>
      Effect.succeed<Outcome>({ ok: false, detail: `the check itself failed: ${reasonOf(cause)}` })
    ),
    Effect.disconnect,
    Effect.timeoutTo({
      duration: timeout,
      onSuccess: (o): Outcome => o,
      onTimeout: (): Outcome => ({ ok: false, detail: `timed out after ${Duration.format(timeout)}` })
    }),
    Effect.map((o): Row => ({
      name: check.name,
      severity: check.severity,
      result: o.skipped ? "skip" : o.ok ? "pass" : "fail",
      detail: o.detail,
      fix: o.ok || o.skipped ? undefined : o.fix
    })),
    Effect.tap((row) => Recorders.recordStartupCheck(row.name, row.severity, row.result !== "fail"))
  )

/** Every check for `context`, in the order of the table. */
export const checks = (context: Context, options: Options = {}) =>
  Effect.gen(function* () {
    const probeTimeout = options.probeTimeout ?? defaults.probeTimeout
    const [backends, database, shared] = yield* Effect.all(
      [gatherBackends(context, probeTimeout), gatherDatabase(context.dataDir), gatherShared(probeTimeout)],
      { concurrency: 3 }
    )
    return [
      ...systemChecks(context),
      ...databaseChecks(database),
      ...backendChecks(context, backends, database),
      ...sharedChecks(shared)
    ] satisfies ReadonlyArray<Check>
  })

/** Runs every check and returns the table (never fails; see `run`). */
export const validate = Effect.fn("StartupValidator.validate")(function* (context: Context, options: Options = {}) {
  const timeout = options.checkTimeout ?? defaults.checkTimeout
  const list = yield* Effect.scoped(
    Effect.flatMap(checks(context, options), (all) =>
      Effect.forEach(all, (c) => runCheck(c, timeout), { concurrency: "unbounded" })
    )
  )
  return list
})

/** The fatal checks that failed. */
export const failedFatal = (rows: ReadonlyArray<Row>) =>
  rows.filter((r) => r.severity === "fatal" && r.result === "fail")

/** The table, aligned: check, severity, result, detail; what to do under each failure. */
export const format = (rows: ReadonlyArray<Row>): string => {
  const header: Row = { name: "CHECK", severity: "fatal", result: "pass", detail: "DETAIL" }
  const nameWidth = Math.max(...[header, ...rows].map((r) => r.name.length)) + 2
  const line = (name: string, severity: string, result: string, detail: string) =>
    `${name.padEnd(nameWidth)}${severity.padEnd(9)}${result.padEnd(7)}${detail}`
  const body = rows.flatMap((r) => [
    line(r.name, r.severity, r.result !== "fail" ? r.result : r.severity === "fatal" ? "FAIL" : "WARN", r.detail),
    ...(r.fix === undefined ? [] : [line("", "", "", `what to do: ${r.fix}`)])
  ])
  const fatal = failedFatal(rows).length
  const warnings = rows.filter((r) => r.severity === "warning" && r.result === "fail").length
  const summary =
    fatal === 0 && warnings === 0
      ? `all ${rows.length} checks passed`
      : `${fatal} fatal check${fatal === 1 ? "" : "s"} failed, ${warnings} warning${warnings === 1 ? "" : "s"}`
  return [line("CHECK", "SEVERITY", "RESULT", "DETAIL"), ...body, "", summary].join("\n")
}

/**
 * Validates, prints the table (`print: "all"`, the default) or only the checks that did not pass
 * (`"problems"`, for `serve`), and fails with `StartupFailed` when a fatal check failed.
 */
export const run = (context: Context, options: Options & { readonly print?: "all" | "problems" } = {}) =>
  Effect.gen(function* () {
    const rows = yield* validate(context, options)
    const shown = options.print === "problems" ? rows.filter((r) => r.result === "fail") : rows
    if (shown.length > 0) yield* Console.log(format(shown))
    const failed = failedFatal(rows)
    if (failed.length > 0) return yield* new StartupFailed({ failed })
    return rows
  })

/** What `serve` is given on its command line; the rest comes from the environment (Config.ts). */
export interface Flags {
  readonly host: string
  readonly port: number
  readonly mode: Config.BackendMode
  /** `--ollama` values; empty: OLLAMA_HOST, else the default. */
  readonly ollama: ReadonlyArray<string>
  /** `--data-dir`; absent: SLUICE_DATA_DIR, else the default. */
  readonly dataDir?: string | undefined
  /** See `Context.bindsPort`. */
  readonly bindsPort?: boolean | undefined
}

const present = (name: string) =>
  Effect.map(
    Effect.orElseSucceed(EffectConfig.nonEmptyString(name), () => ""),
    (v) => v.length > 0
  )

/** The context for `flags`: Ollama URLs decoded, settings from the environment. */
export const contextFrom = (flags: Flags) =>
  Effect.gen(function* () {
    const given = flags.ollama.length > 0 ? flags.ollama : yield* Config.ollamaHosts
    const urls = yield* Effect.forEach(given, (url) => decodeHost(url))
    const settings = yield* HealthConfig.settings
    const apiKeys = (yield* present("SLUICE_API_KEY")) || (yield* present("SLUICE_API_KEYS"))
    const telemetry = yield* Telemetry.optionsFromEnv()
    return {
      host: flags.host,
      port: flags.port,
      mode: flags.mode,
      urls,
      dataDir: flags.dataDir ?? settings.dataDir,
      engine: yield* EngineConfig.engine,
      requirements: settings.requirements,
      limits: settings.limits,
      health: { interval: settings.interval, timeout: settings.timeout },
      apiKeys,
      telemetryUrl: Option.map(telemetry, (t) => t.url),
      bindsPort: flags.bindsPort
    } satisfies Context
  })
