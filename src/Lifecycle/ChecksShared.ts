/**
 * The startup checks of the shared Redis (`SLUICE_REDIS_URL`; none without it): it answers, and its version is
 * 6.2 or newer. A connection of its own is opened for the checks and closed after them.
 *
 * Choices:
 * - `redis-reachable` is a warning, whatever `SLUICE_REDIS_FALLBACK` says: a running instance keeps serving while
 *   Redis is away (with the fallback) and recovers by itself when it returns, so one starting while Redis is away
 *   must do the same; a fatal check would turn a Redis outage during a deploy or a restart into a fleet outage.
 * - `redis-credentials` is fatal: a Redis that answers but refuses the URL's user or password will refuse it
 *   after any restart too, and an instance running on its fallback for good would quietly let every key through at
 *   its limit per instance (or refuse with 503, with `closed`).
 * - `redis-version` is fatal: the shared limits and cache run Lua scripts and commands of Redis 6.2 and later,
 *   which an older server refuses on every call. It is skipped (nothing to check) while Redis does not answer.
 * - Messages name the URL without its password.
 */
import { Duration, Effect, Option } from "effect"
import { fallbackMeaning } from "../Observability/HealthShared.js"
import * as Redis from "../Shared/Redis.js"
import { atLeast } from "./Checks.js"
import type { Check, Outcome } from "./StartupValidator.js"

/** The oldest Redis Sluice supports. */
export const minimumRedis = [6, 2] as const

export type SharedFacts =
  | { readonly _tag: "Unconfigured" }
  | { readonly _tag: "Unreachable"; readonly url: string; readonly fallback: Redis.Fallback; readonly error: string }
  | { readonly _tag: "Answers"; readonly url: string; readonly version: string }

/** Resolves once the connection is ready (true) or reports its first error (false), within `within`. */
const readyOrError = (connection: Redis.Connection, within: number) =>
  Effect.async<{ readonly ready: boolean; readonly error?: string }>((resume) => {
    const client = connection.client
    if (client.status === "ready") return resume(Effect.succeed({ ready: true }))
    const done = (result: { readonly ready: boolean; readonly error?: string }) => {
      clearTimeout(timer)
      client.off("ready", onReady)
      client.off("error", onError)
      resume(Effect.succeed(result))
    }
    const onReady = () => done({ ready: true })
    const onError = (e: Error) => done({ ready: false, error: (e.message || String(e)).replace(/\.$/, "") })
    const timer = setTimeout(() => done({ ready: false, error: `no answer within ${within} ms` }), within)
    client.once("ready", onReady)
    client.once("error", onError)
    return Effect.sync(() => (clearTimeout(timer), client.off("ready", onReady), client.off("error", onError)))
  })

/** What Redis answers, read once for the checks (in the validation's scope); never fails. */
export const gatherShared = (probeTimeout: Duration.DurationInput) =>
  Effect.gen(function* () {
    const settings = yield* Effect.orElseSucceed(Redis.settings, () => undefined)
    if (settings === undefined || Option.isNone(settings.url)) return { _tag: "Unconfigured" } as SharedFacts
    const connection = yield* Redis.connect({ url: settings.url.value, timeout: settings.timeout })
    const url = connection.url
    const unreachable = (error: string): SharedFacts => ({
      _tag: "Unreachable",
      url,
      fallback: settings.fallback,
      error
    })
    const ready = yield* readyOrError(connection, Math.max(1, Duration.toMillis(Duration.decode(probeTimeout))))
    if (!ready.ready) return unreachable(ready.error ?? "no answer")
    return yield* Redis.version(connection).pipe(
      Effect.map((version): SharedFacts => ({ _tag: "Answers", url, version })),
      Effect.catchAll((e) => Effect.succeed(unreachable(e.message)))
    )
  })

const pass = (detail: string): Outcome => ({ ok: true, detail })
const skip = (detail: string): Outcome => ({ ok: true, skipped: true, detail })

/** Redis answered, and refused the credentials (not an outage: a configuration error). */
const refused = (facts: SharedFacts): boolean =>
  facts._tag === "Unreachable" && /\b(WRONGPASS|NOAUTH|NOPERM)\b/.test(facts.error)

const credentials = (facts: Exclude<SharedFacts, { _tag: "Unconfigured" }>): Check => ({
  name: "redis-credentials",
  severity: "fatal",
  run: Effect.succeed(
    !refused(facts)
      ? facts._tag === "Answers"
        ? pass(`Redis at ${facts.url} accepts the connection`)
        : skip(`Redis at ${facts.url} does not answer: its credentials are checked once it does`)
      : {
          ok: false,
          detail: `Redis at ${facts.url} refuses the credentials: ${facts._tag === "Unreachable" ? facts.error : ""}`,
          fix: "correct the user and password in SLUICE_REDIS_URL (redis://user:password@host:port), or the server's ACL"
        }
  )
})

const reachable = (facts: Exclude<SharedFacts, { _tag: "Unconfigured" }>): Check => ({
  name: "redis-reachable",
  severity: "warning",
  run: Effect.succeed(
    facts._tag === "Answers"
      ? pass(`Redis at ${facts.url} answers (Redis ${facts.version})`)
      : {
          ok: false,
          detail: `Redis at ${facts.url} does not answer: ${facts.error}; until it does, SLUICE_REDIS_FALLBACK=${facts.fallback}: ${fallbackMeaning[facts.fallback]}`,
          fix: "start Redis or correct SLUICE_REDIS_URL (Sluice connects by itself once it answers)"
        }
  )
})

const version = (facts: Exclude<SharedFacts, { _tag: "Unconfigured" }>): Check => ({
  name: "redis-version",
  severity: "fatal",
  run: Effect.succeed(
    facts._tag !== "Answers"
      ? skip(`Redis at ${facts.url} does not answer: its version is checked once it does`)
      : atLeast(facts.version, minimumRedis)
        ? pass(`Redis ${facts.version} at ${facts.url}`)
        : {
            ok: false,
            detail: `Redis ${facts.version} at ${facts.url} is older than ${minimumRedis.join(".")}`,
            fix: `upgrade Redis to ${minimumRedis.join(".")} or newer: the shared limits and cache use its scripts and commands`
          }
  )
})

/** The checks of the shared Redis; none when it is not configured. */
export const sharedChecks = (facts: SharedFacts): ReadonlyArray<Check> =>
  facts._tag === "Unconfigured" ? [] : [reachable(facts), credentials(facts), version(facts)]
