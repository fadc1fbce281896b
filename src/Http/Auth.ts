/**
 * API keys at the gateway (docs/security.md): a middleware that authenticates each request, checks the scope its
 * route needs, applies the key's limits, and hands the key to the handlers (`KeyContext`, `callOptions`).
 *
 * Choices:
 * - Off by default on loopback: while no key exists in the store and none is set in the environment, a gateway
 *   bound to loopback serves everyone on this machine (`npm start` needs no key). Once a key exists (revoked ones
 *   count), every non-public route needs one. Bound beyond loopback, authentication is always on (and startup
 *   refuses to run without a key: Lifecycle/ChecksAuth.ts). While off, the store is asked again at most once a
 *   second, so a key made with `sluice keys create` turns authentication on without a restart.
 * - Keys from the environment (`SLUICE_API_KEY`, `SLUICE_API_KEYS`) have every scope and no limits.
 * - Every request looks its key up in the store (a primary-key read), so a revocation acts at once.
 * - Fails closed: when the store does not answer, the request gets 503, never a pass.
 * - Refusals are logged at debug level and counted (`sluice_auth_failures_total{reason}`), never with the key.
 * - A key's budget bounds each of its requests. Calls and tokens: the middleware runs the request in
 *   `Budget.scoped`, so every engine call the request makes (an agent's many, or one) counts, and the engine
 *   refuses the call that would pass it (the route answers 429). Time: handed to the engine through
 *   `callOptions` (`budget.time`), because the middleware cannot end a handler cleanly (the router answers an
 *   interrupted handler itself); the engine applies it to each unary call.
 */
import { HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Duration, Effect, Option, Redacted } from "effect"
import { isLoopback } from "../Config.js"
import { BudgetExceeded, SharedStoreUnavailable } from "../Domain/LlmError.js"
import * as Budget from "../Llm/Budget.js"
import { RegistryFull } from "../Llm/Keyed.js"
import type { CallOptions } from "../Llm/Llm.js"
import * as Recorders from "../Observability/Recorders.js"
import { allScopes, type KeyBudget, type KeyLimits, type Priority, type Scope } from "../Store/KeysRepo.js"
import * as KeysRepo from "../Store/KeysRepo.js"
import type { StorageError } from "../Store/StorageError.js"
import * as AuthKey from "./AuthKey.js"
import { KeyLimited, makeRegistry } from "./AuthLimits.js"
import { meter } from "./AuthMeter.js"
import * as AuthPolicy from "./AuthPolicy.js"
import * as AuthResponses from "./AuthResponses.js"
import * as Respond from "./Respond.js"

/** The key a request was made with, as the handlers see it. */
export interface Key {
  readonly id: string
  readonly name: string
  readonly scopes: ReadonlyArray<Scope>
  readonly priority?: Priority | undefined
  readonly budget?: KeyBudget | undefined
}

/** The authenticated key of the current request (absent when authentication is off or the route is public). */
export class KeyContext extends Context.Tag("sluice/KeyContext")<KeyContext, Key>() {}

/** The current request's key, if any. */
export const currentKey: Effect.Effect<Option.Option<Key>> = Effect.serviceOption(KeyContext)

/**
 * The engine options of the current request's key: its scheduler class, and its time budget per call. Handlers
 * pass them to the engine: `llm.chatServed(req, yield* Auth.callOptions)`. Empty without a key (the engine's
 * defaults apply).
 */
export const callOptions: Effect.Effect<Partial<CallOptions>> = Effect.map(currentKey, (key) =>
  Option.match(key, { onNone: () => none, onSome: optionsOf })
)

const none: Partial<CallOptions> = {}

const optionsOf = (k: Key): Partial<CallOptions> => ({
  ...(k.priority === undefined ? {} : { priority: k.priority }),
  ...(k.budget?.timeMs === undefined ? {} : { budget: { time: Duration.millis(k.budget.timeMs) } })
})

/** `callOptions` read from a fiber's context, for a handler that reads its services in one step. */
export const callOptionsIn = (context: Context.Context<never>): Partial<CallOptions> => {
  const key = Context.getOption(context, KeyContext)
  return key._tag === "None" ? none : optionsOf(key.value)
}

/** A key that passed, with its limits. */
interface Verified extends Key {
  readonly limits: KeyLimits
}

type Verdict =
  | { readonly _tag: "Valid"; readonly key: Verified }
  | { readonly _tag: "Invalid"; readonly reason: "invalid" | "revoked" }

const invalid: Verdict = { _tag: "Invalid", reason: "invalid" }

const envKey: Verified = { id: "env", name: "SLUICE_API_KEY", scopes: allScopes, limits: {} }

const verifiedOf = (row: KeysRepo.StoredKey): Verified => ({
  id: row.id,
  name: row.name,
  scopes: row.scopes,
  priority: row.limits.priority,
  budget: row.limits.budget,
  limits: row.limits
})

export interface Options extends Partial<Omit<AuthPolicy.Settings, "host">> {
  /** The address the gateway binds. */
  readonly host: string
}

/** How long "no key exists" is believed before the store is asked again. */
const recheckMs = 1_000

/** The calls and tokens of a key's budget (its time goes to the engine: `callOptions`); none when neither. */
const requestBudget = (b: KeyBudget | undefined): Option.Option<Budget.Limits> =>
  b === undefined || (b.calls === undefined && b.tokens === undefined)
    ? Option.none()
    : Option.some({ calls: b.calls, tokens: b.tokens })

/** Authentication, scopes and per-key limits for the gateway. */
export class Auth extends Effect.Service<Auth>()("sluice/Auth", {
  scoped: (options: Options) =>
    Effect.gen(function* () {
      const settings: AuthPolicy.Settings = { ...(yield* AuthPolicy.settings), ...options }
      const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
      const repo = Option.map(sql, KeysRepo.make)
      const envKeys = settings.apiKeys.map(Redacted.value)
      const registry = yield* makeRegistry
      // the last answer of the store (a plain value: read and set within one step, see `required`)
      let seen = { on: false, at: -Infinity }

      /** Whether requests need a key: always beyond loopback or with env keys; else once the store has one. */
      const required: Effect.Effect<boolean> =
        envKeys.length > 0 || !isLoopback(settings.host)
          ? Effect.succeed(true)
          : Option.match(repo, {
              onNone: () => Effect.succeed(false),
              onSome: (r) =>
                // one step while the last answer holds (every request asks)
                Effect.clockWith((clock) => {
                  const now = clock.unsafeCurrentTimeMillis()
                  if (seen.on || now - seen.at < recheckMs) return Effect.succeed(seen.on)
                  // a store that does not answer counts as "keys exist": fail closed
                  return Effect.map(
                    Effect.orElseSucceed(r.any, () => true),
                    (on) => {
                      seen = { on, at: now }
                      return on
                    }
                  )
                })
            })

      const verify = (credential: string): Effect.Effect<Verdict, StorageError> => {
        if (envKeys.length > 0 && AuthKey.matchesAny(credential, envKeys))
          return Effect.succeed({ _tag: "Valid", key: envKey })
        const parsed = AuthKey.parse(credential)
        if (Option.isNone(parsed) || Option.isNone(repo))
          return Effect.sync(() => {
            AuthKey.compareDummy(credential)
            return invalid
          })
        const { id, secret } = parsed.value
        return Effect.map(
          repo.value.find(id),
          Option.match({
            onNone: (): Verdict => {
              AuthKey.compareDummy(secret)
              return invalid
            },
            onSome: (row): Verdict =>
              !AuthKey.matches(secret, row.secretHash)
                ? invalid
                : row.revokedAt !== null
                  ? { _tag: "Invalid", reason: "revoked" }
                  : { _tag: "Valid", key: verifiedOf(row) }
          })
        )
      }

      return { settings, required, verify, registry } as const
    })
}) {}

/** The service from options and the environment (SLUICE_API_KEY(S), SLUICE_PUBLIC_ROUTES). */
export const layer = (options: Options) => Auth.Default(options)

const refuse = (reason: string, path: string, response: HttpServerResponse.HttpServerResponse) =>
  Effect.as(
    Effect.zipRight(
      Recorders.recordAuthFailure(reason),
      Effect.logDebug("auth: request refused").pipe(Effect.annotateLogs({ reason, path }))
    ),
    response
  )

/** Runs `app` as `key`: in its KeyContext, under its limits (held while it runs) and budget, its answer metered. */
const asKey = <E, R>(auth: Auth, key: Verified, flavor: AuthPolicy.Flavor, app: HttpApp.Default<E, R>) =>
  auth.registry
    .withLimiter(key.id, key.limits, (limiter) => {
      const inner = (headers: Readonly<Record<string, string>>) =>
        Effect.gen(function* () {
          if (limiter.metered || Object.keys(headers).length > 0)
            yield* HttpApp.appendPreResponseHandler((_req, response) => {
              const withHeaders = Respond.withHeaders(response, headers)
              return limiter.metered ? meter(withHeaders, limiter.charge) : Effect.succeed(withHeaders)
            })
          const run = Effect.provideService(app, KeyContext, key)
          return yield* Option.match(requestBudget(key.budget), {
            onNone: () => run,
            onSome: (limits) => Budget.scoped(`key:${key.name}`, limits)(run)
          })
        })
      return limiter.run(inner).pipe(
        // the key's limits are kept in Redis, which does not answer, and SLUICE_REDIS_FALLBACK=closed
        Effect.catchIf(
          (e): e is SharedStoreUnavailable => e instanceof SharedStoreUnavailable,
          (e) => Effect.succeed(AuthResponses.unavailable(flavor, e.message))
        ),
        Effect.catchIf(
          (e): e is KeyLimited | BudgetExceeded => e instanceof KeyLimited || e instanceof BudgetExceeded,
          (e) =>
            Effect.as(
              Effect.logDebug("auth: request over its key's limit").pipe(
                Effect.annotateLogs({ key: key.id, limit: e.limit })
              ),
              overLimit(flavor, e)
            )
        )
      )
    })
    .pipe(
      Effect.catchIf(
        (e): e is RegistryFull => e instanceof RegistryFull,
        (e) =>
          Effect.as(
            Effect.logWarning("auth: no room for another key's limits").pipe(
              Effect.annotateLogs({ key: key.id, capacity: e.capacity })
            ),
            AuthResponses.unavailable(flavor, "too many API keys are in use at once")
          )
      )
    )

/** 429 for a key's rate or concurrency limit (or its budget, should `Budget.scoped` itself refuse). */
const overLimit = (flavor: AuthPolicy.Flavor, e: KeyLimited | BudgetExceeded) =>
  AuthResponses.limited(
    flavor,
    e.message,
    e.limit === "tokens" ? "tokens" : "requests",
    e instanceof KeyLimited ? e.retryAfterMs : 1_000,
    e instanceof KeyLimited ? e.headers : {}
  )

/**
 * The gateway middleware: public routes pass; otherwise (when keys are required) a key must be presented, valid,
 * not revoked, with the route's scope, and within its limits.
 */
export const middleware =
  (auth: Auth) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    // the request and its path read in place (every request passes here; most need no key check)
    Effect.withFiberRuntime((fiber) => {
      const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
      const path = AuthPolicy.pathOf(request.url)
      if (AuthPolicy.isPublic(path, auth.settings.publicRoutes)) return app
      return Effect.flatMap(auth.required, (required) => (required ? checked(auth, request, path, app) : app))
    })

/** A request on a route that needs a key, while keys are required. */
const checked = <E, R>(
  auth: Auth,
  request: HttpServerRequest.HttpServerRequest,
  path: string,
  app: HttpApp.Default<E, R>
): HttpApp.Default<E, R> =>
  Effect.gen(function* () {
    const flavor = AuthPolicy.flavorOf(path)
    const credential = AuthPolicy.credentialOf(request.headers)
    if (Option.isNone(credential))
      return yield* refuse("missing", path, AuthResponses.unauthorized(flavor, "missing API key"))
    const verdict = yield* Effect.either(auth.verify(credential.value))
    if (verdict._tag === "Left") {
      yield* Effect.logWarning("auth: the key store did not answer").pipe(
        Effect.annotateLogs({ error: verdict.left.message })
      )
      return AuthResponses.unavailable(flavor)
    }
    if (verdict.right._tag === "Invalid")
      return yield* refuse(verdict.right.reason, path, AuthResponses.unauthorized(flavor, "invalid API key"))
    const key = verdict.right.key
    const scope = AuthPolicy.scopeOf(path)
    if (!key.scopes.includes(scope)) return yield* refuse("forbidden", path, AuthResponses.forbidden(flavor, scope))
    return yield* asKey(auth, key, flavor, app)
  })
