/** API keys over real HTTP: the gateway in front of the simulator, keys in an in-memory store. */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import OpenAI from "openai"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import * as Store from "../../src/Store/Store.js"
import { bearer, createKey } from "./AuthFixtures.js"
import { GatewayUrl, layer as gateway } from "./gateway.js"

const fetchFrom = (path: string, init: RequestInit = {}) =>
  Effect.flatMap(GatewayUrl, (url) =>
    Effect.promise(async () => {
      const response = await fetch(`${url}${path}`, init)
      const text = await response.text()
      return { status: response.status, headers: response.headers, text }
    })
  )

const chat = (key: string, stream: boolean) =>
  fetchFrom("/api/chat", {
    method: "POST",
    headers: { ...bearer(key), "content-type": "application/json" },
    body: JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: "hi" }], stream })
  })

const tokensOf = (json: string) => {
  const answer = JSON.parse(json) as { prompt_eval_count: number; eval_count: number }
  return answer.prompt_eval_count + answer.eval_count
}

const remainingTokens = (headers: Headers) => Number(headers.get("x-ratelimit-remaining-tokens"))

layer(gateway(fast()).pipe(Layer.provideMerge(Store.layerMemory)), { excludeTestServices: true })(
  "gateway with API keys",
  (it) => {
    it.effect("401 without a key or with a wrong one, 403 without the scope, public /health/live open", () =>
      Effect.gen(function* () {
        const app = yield* createKey("app", ["inference"])
        const none = yield* fetchFrom("/api/tags")
        assert.strictEqual(none.status, 401)
        assert.deepStrictEqual(JSON.parse(none.text), { error: "missing API key" })
        assert.strictEqual(none.headers.get("www-authenticate"), 'Bearer realm="sluice"')
        assert.strictEqual((yield* fetchFrom("/api/tags", { headers: bearer("sk-sluice-nope") })).status, 401)
        assert.strictEqual((yield* fetchFrom("/api/tags", { headers: bearer(app.key) })).status, 200)
        assert.strictEqual((yield* fetchFrom("/api/tags", { headers: { "x-api-key": app.key } })).status, 200)
        assert.strictEqual((yield* fetchFrom("/metrics", { headers: bearer(app.key) })).status, 403)
        assert.strictEqual((yield* fetchFrom("/health/live")).status, 200)
      })
    )

    it.effect("OpenAI's SDK sees a wrong key as AuthenticationError and lists models with a good one", () =>
      Effect.gen(function* () {
        const app = yield* createKey("sdk", ["inference"])
        const url = yield* GatewayUrl
        const error = yield* Effect.promise(() =>
          new OpenAI({ apiKey: "sk-wrong", baseURL: `${url}/v1`, maxRetries: 0 }).models.list().then(
            () => assert.fail("expected a 401"),
            (e: unknown) => e
          )
        )
        assert.instanceOf(error, OpenAI.AuthenticationError)
        assert.strictEqual((error as InstanceType<typeof OpenAI.AuthenticationError>).code, "invalid_api_key")
        const models = yield* Effect.promise(() =>
          new OpenAI({ apiKey: app.key, baseURL: `${url}/v1`, maxRetries: 0 }).models.list()
        )
        assert.isAbove(models.data.length, 0)
      })
    )

    it.effect("a key with rpm 5 gets 429 on the 6th request, Retry-After 12 and the rate-limit headers", () =>
      Effect.gen(function* () {
        const key = yield* createKey("rpm5", ["inference"], { rpm: 5 })
        for (let i = 0; i < 5; i++)
          assert.strictEqual((yield* fetchFrom("/api/version", { headers: bearer(key.key) })).status, 200)
        const limited = yield* fetchFrom("/api/version", { headers: bearer(key.key) })
        assert.strictEqual(limited.status, 429)
        assert.strictEqual(limited.headers.get("retry-after"), "12")
        assert.strictEqual(limited.headers.get("x-ratelimit-limit-requests"), "5")
        assert.strictEqual(limited.headers.get("x-ratelimit-remaining-requests"), "0")
        assert.match(limited.headers.get("x-ratelimit-reset-requests") ?? "", /^\d+s$/)
        assert.include(JSON.parse(limited.text).error, "rate limit on requests")
      })
    )

    it.effect("tokens per minute: unary and streamed answers are charged with the tokens they report", () =>
      Effect.gen(function* () {
        const key = yield* createKey("tpm", ["inference"], { tpm: 6_000 })
        const first = yield* chat(key.key, false)
        assert.strictEqual(first.status, 200)
        assert.strictEqual(remainingTokens(first.headers), 6_000, "the headers are taken before the call")
        const unary = tokensOf(first.text)
        assert.isAbove(unary, 0)
        // the bucket refills 0.1 token per ms: 100 tokens of slack is a second
        const second = yield* chat(key.key, true)
        assert.isAtMost(remainingTokens(second.headers), 6_000 - unary + 100)
        assert.isAtLeast(remainingTokens(second.headers), 6_000 - unary)
        const streamed = tokensOf(second.text.trim().split("\n").at(-1)!)
        assert.isAbove(streamed, 0)
        const third = yield* chat(key.key, false)
        assert.isAtMost(remainingTokens(third.headers), remainingTokens(second.headers) - streamed + 100)
      })
    )
  }
)
