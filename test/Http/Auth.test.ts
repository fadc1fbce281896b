/** API keys at the gateway: authentication, scopes, public routes and per-key limits (in-process, on TestClock). */
import { HttpServerResponse } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Fiber, Layer, TestClock } from "effect"
import * as Auth from "../../src/Http/Auth.js"
import * as Budget from "../../src/Llm/Budget.js"
import * as Store from "../../src/Store/Store.js"
import { bearer, createKey, echo, harness, revokeKey } from "./AuthFixtures.js"

/** The middleware on loopback over an in-memory store; SLUICE_API_KEY from `env` when given. */
const withAuth = (options: { host?: string; env?: Record<string, string> } = {}) =>
  Auth.layer({ host: options.host ?? "127.0.0.1" }).pipe(
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson(options.env ?? {}))),
    Layer.provideMerge(Store.layerMemory)
  )

describe("Auth: who may call", () => {
  it.effect("no key is 401 missing, a wrong key 401 invalid, both with WWW-Authenticate: Bearer", () =>
    Effect.gen(function* () {
      const good = yield* createKey("app")
      const call = yield* harness()
      const none = yield* call("/api/chat")
      assert.strictEqual(none.status, 401)
      assert.deepStrictEqual(none.body, { error: "missing API key" })
      assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/)
      const wrongSecret = `${good.key.slice(0, -4)}AAAA`
      const unknownId = `sk-sluice-AAAAAAAAAAAA-${good.key.slice(-43)}`
      for (const key of ["nonsense", wrongSecret, unknownId]) {
        const wrong = yield* call("/api/chat", bearer(key))
        assert.strictEqual(wrong.status, 401, key)
        assert.deepStrictEqual(wrong.body, { error: "invalid API key" })
        assert.match(wrong.headers.get("www-authenticate") ?? "", /^Bearer/)
      }
      const ok = yield* call("/api/chat", bearer(good.key))
      assert.strictEqual(ok.status, 200)
      assert.strictEqual(ok.body.key, good.id)
      const viaHeader = yield* call("/api/chat", { "x-api-key": good.key })
      assert.strictEqual(viaHeader.status, 200)
    }).pipe(Effect.provide(withAuth()))
  )

  it.effect("a revoked key is 401 from its next request", () =>
    Effect.gen(function* () {
      const key = yield* createKey("app")
      const call = yield* harness()
      assert.strictEqual((yield* call("/api/tags", bearer(key.key))).status, 200)
      yield* revokeKey(key.id)
      const revoked = yield* call("/api/tags", bearer(key.key))
      assert.strictEqual(revoked.status, 401)
      assert.deepStrictEqual(revoked.body, { error: "invalid API key" })
    }).pipe(Effect.provide(withAuth()))
  )

  it.effect("an inference-only key is 403 on /metrics; an admin key passes; /health/live is public", () =>
    Effect.gen(function* () {
      const inference = yield* createKey("app", ["inference"])
      const admin = yield* createKey("ops", ["admin"])
      const call = yield* harness()
      const forbidden = yield* call("/metrics", bearer(inference.key))
      assert.strictEqual(forbidden.status, 403)
      assert.include(forbidden.body.error, `"admin" scope`)
      assert.include(forbidden.headers.get("www-authenticate") ?? "", 'error="insufficient_scope"')
      assert.strictEqual((yield* call("/health/ready", bearer(inference.key))).status, 403)
      assert.strictEqual((yield* call("/metrics", bearer(admin.key))).status, 200)
      assert.strictEqual((yield* call("/api/chat", bearer(admin.key))).status, 403)
      const live = yield* call("/health/live")
      assert.strictEqual(live.status, 200)
      assert.strictEqual(live.body.key, null)
    }).pipe(Effect.provide(withAuth()))
  )

  it.effect("SLUICE_API_KEY is accepted with every scope; other keys still need the store", () =>
    Effect.gen(function* () {
      const call = yield* harness()
      const env = yield* call("/metrics", bearer("env-secret"))
      assert.strictEqual(env.status, 200)
      assert.strictEqual(env.body.key, "env")
      assert.strictEqual((yield* call("/agents/x", { "x-api-key": "env-secret" })).status, 200)
      assert.strictEqual((yield* call("/api/chat", bearer("env-secreT"))).status, 401)
      assert.strictEqual((yield* call("/api/chat")).status, 401)
    }).pipe(Effect.provide(withAuth({ env: { SLUICE_API_KEY: "env-secret" } })))
  )

  it.effect("on loopback with no key anywhere authentication is off; bound beyond loopback it never is", () =>
    Effect.gen(function* () {
      const call = yield* harness()
      const open = yield* call("/metrics")
      assert.strictEqual(open.status, 200)
      assert.strictEqual(open.body.key, null)
    }).pipe(
      Effect.provide(withAuth()),
      Effect.zipRight(
        Effect.gen(function* () {
          const call = yield* harness()
          assert.strictEqual((yield* call("/api/chat")).status, 401)
          assert.strictEqual((yield* call("/health/live")).status, 200)
        }).pipe(Effect.provide(withAuth({ host: "0.0.0.0" })))
      )
    )
  )

  it.effect("SLUICE_PUBLIC_ROUTES replaces the public list (exact paths and /prefix/*)", () =>
    Effect.gen(function* () {
      yield* createKey("app")
      const call = yield* harness()
      assert.strictEqual((yield* call("/health/live")).status, 401)
      assert.strictEqual((yield* call("/metrics")).status, 200)
      assert.strictEqual((yield* call("/docs/a/b")).status, 200)
      assert.strictEqual((yield* call("/docsx")).status, 401)
    }).pipe(Effect.provide(withAuth({ env: { SLUICE_PUBLIC_ROUTES: "/metrics, /docs/*" } })))
  )

  it.effect("OpenAI routes refuse in OpenAI's error envelope", () =>
    Effect.gen(function* () {
      yield* createKey("app")
      const call = yield* harness()
      const refused = yield* call("/v1/chat/completions", bearer("sk-wrong"))
      assert.strictEqual(refused.status, 401)
      assert.deepStrictEqual(refused.body, {
        error: { message: "invalid API key", type: "invalid_request_error", param: null, code: "invalid_api_key" }
      })
    }).pipe(Effect.provide(withAuth()))
  )

  it.effect("the key's priority reaches the handlers through Auth.callOptions", () =>
    Effect.gen(function* () {
      const batch = yield* createKey("nightly", ["inference"], { priority: "batch" })
      const plain = yield* createKey("app")
      const call = yield* harness()
      assert.deepStrictEqual((yield* call("/api/chat", bearer(batch.key))).body.options, { priority: "batch" })
      assert.deepStrictEqual((yield* call("/api/chat", bearer(plain.key))).body.options, {})
    }).pipe(Effect.provide(withAuth()))
  )
})

describe("Auth: per-key limits", () => {
  it.effect("rpm 5: five pass, the 6th is 429 with Retry-After 12 s (60 / 5) and the rate-limit headers", () =>
    Effect.gen(function* () {
      const key = yield* createKey("app", ["inference"], { rpm: 5 })
      const call = yield* harness()
      for (let i = 1; i <= 5; i++) {
        const ok = yield* call("/api/chat", bearer(key.key))
        assert.strictEqual(ok.status, 200)
        assert.strictEqual(ok.headers.get("x-ratelimit-limit-requests"), "5")
        assert.strictEqual(ok.headers.get("x-ratelimit-remaining-requests"), String(5 - i))
        assert.strictEqual(ok.headers.get("x-ratelimit-reset-requests"), `${12 * i}s`)
      }
      const limited = yield* call("/api/chat", bearer(key.key))
      assert.strictEqual(limited.status, 429)
      assert.strictEqual(limited.headers.get("retry-after"), "12")
      assert.strictEqual(limited.headers.get("x-ratelimit-limit-requests"), "5")
      assert.strictEqual(limited.headers.get("x-ratelimit-remaining-requests"), "0")
      assert.strictEqual(limited.headers.get("x-ratelimit-reset-requests"), "60s")
      assert.include(limited.body.error, "rate limit on requests")

      yield* TestClock.adjust("11999 millis")
      assert.strictEqual((yield* call("/api/chat", bearer(key.key))).headers.get("retry-after"), "1")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* call("/api/chat", bearer(key.key))).status, 200)
      assert.strictEqual((yield* call("/api/chat", bearer(key.key))).status, 429)
    }).pipe(Effect.provide(withAuth()))
  )

  it.effect("limits are per key: another key is not limited by the first one's use", () =>
    Effect.gen(function* () {
      const a = yield* createKey("a", ["inference"], { rpm: 1 })
      const b = yield* createKey("b", ["inference"], { rpm: 1 })
      const call = yield* harness()
      assert.strictEqual((yield* call("/", bearer(a.key))).status, 200)
      assert.strictEqual((yield* call("/", bearer(a.key))).status, 429)
      assert.strictEqual((yield* call("/", bearer(b.key))).status, 200)
    }).pipe(Effect.provide(withAuth()))
  )

  it.effect("tpm: the tokens an answer reports are charged; the next call waits until the bucket is back to 0", () =>
    Effect.gen(function* () {
      const key = yield* createKey("app", ["inference"], { tpm: 100 })
      const answer = Effect.succeed(
        HttpServerResponse.unsafeJson({ done: true, prompt_eval_count: 60, eval_count: 50 })
      )
      const call = yield* harness(answer)
      const first = yield* call("/api/chat", bearer(key.key))
      assert.strictEqual(first.status, 200)
      assert.strictEqual(first.headers.get("x-ratelimit-limit-tokens"), "100")
      const limited = yield* call("/api/chat", bearer(key.key))
      assert.strictEqual(limited.status, 429)
      // 110 tokens charged against 100: -10, back to 0 after 10 / 100 of a minute
      assert.strictEqual(limited.headers.get("retry-after"), "6")
      assert.include(limited.body.error, "rate limit on tokens")
      yield* TestClock.adjust("6 seconds")
      assert.strictEqual((yield* call("/api/chat", bearer(key.key))).status, 200)
    }).pipe(Effect.provide(withAuth()))
  )

  it.effect("concurrency 1: a second call while the first runs is 429; once it ends, calls pass again", () =>
    Effect.gen(function* () {
      const key = yield* createKey("app", ["inference"], { concurrency: 1 })
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const slow = Effect.zipRight(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(release)), echo)
      const call = yield* harness(slow)
      const first = yield* Effect.fork(call("/api/chat", bearer(key.key)))
      yield* Deferred.await(started)
      const second = yield* call("/api/chat", bearer(key.key))
      assert.strictEqual(second.status, 429)
      assert.include(second.body.error, "too many concurrent requests")
      assert.strictEqual(second.headers.get("retry-after"), "1")
      yield* Deferred.succeed(release, undefined)
      assert.strictEqual((yield* Fiber.join(first)).status, 200)
      assert.strictEqual((yield* call("/api/chat", bearer(key.key))).status, 200)
    }).pipe(Effect.provide(withAuth()))
  )

  it.effect("a key's budget: calls and tokens bound each request's engine calls; time goes to the engine", () =>
    Effect.gen(function* () {
      const key = yield* createKey("agent", ["inference"], { budget: { calls: 1, timeMs: 30_000 } })
      const twoCalls = Effect.gen(function* () {
        yield* Budget.reserveCall
        const second = yield* Effect.flip(Budget.reserveCall)
        const options = yield* Auth.callOptions
        return HttpServerResponse.unsafeJson({ second: second.message, time: options.budget?.time })
      }).pipe(Effect.orDie)
      const call = yield* harness(twoCalls)
      const answer = yield* call("/api/chat", bearer(key.key))
      assert.strictEqual(answer.body.second, `budget "key:agent" ran out of calls: used 1 of 1`)
      assert.isDefined(answer.body.time, "the time budget is in the engine options")
      // each request gets a fresh budget
      assert.strictEqual((yield* call("/api/chat", bearer(key.key))).status, 200)
    }).pipe(Effect.provide(withAuth()))
  )
})
