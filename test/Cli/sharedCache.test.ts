/**
 * Two `sluice serve` processes sharing one redis-server and one simulator (issue 14's done-when): identical calls
 * spread over both reach the simulator once, and a Redis stopped mid-run neither stops them serving nor keeps them
 * from recovering by themselves.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"
import { sluice, waitFor } from "./process.js"

const listening = /Listening on (http:\/\/[\w.:[\]]+)/

/** Every chat takes `requestMs` on the simulator, with room for 100 at once. */
const slow = (requestMs: number) => mapModels(fast({ maxQueue: 1000 }), (m) => ({ ...m, requestMs, numParallel: 100 }))

/** Two instances over `sim`, sharing the Redis at `redisUrl`; health checked every 500 ms. */
const twoInstances = (simUrl: string, redisUrl: string) =>
  Effect.gen(function* () {
    const env = {
      SLUICE_REDIS_URL: redisUrl,
      // a command timeout for a loaded test machine (250 ms by default): a command that times out falls back to a
      // local decision, which is right but would make the count of upstream requests depend on the machine's load
      SLUICE_REDIS_TIMEOUT: "3 seconds",
      SLUICE_BACKEND_SLOTS: "100",
      SLUICE_HEALTH_INTERVAL: "500 millis",
      SLUICE_HEALTH_TIMEOUT: "400 millis"
    }
    const a = yield* sluice(["serve", "--port", "0", "--ollama", simUrl], env)
    const b = yield* sluice(["serve", "--port", "0", "--ollama", simUrl], env)
    return [yield* waitFor(a, listening), yield* waitFor(b, listening)] as const
  })

interface Answer {
  readonly status: number
  readonly cache: string | null
  readonly content: string
}

const chat = (url: string, prompt: string): Promise<Answer> =>
  fetch(`${url}/api/chat`, {
    method: "POST",
    body: JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: prompt }], stream: false })
  }).then(async (r) => {
    const body = (await r.json()) as { message?: { content: string } }
    return { status: r.status, cache: r.headers.get("x-sluice-cache"), content: body.message?.content ?? "" }
  })

const chats = (sim: Simulator.Service) => Effect.map(sim.stats, (stats) => stats.requests["/api/chat"] ?? 0)

/** The value of a metric line (summed over its label sets matching `labels`). */
const metric = async (url: string, name: string, labels = "") => {
  const text = await fetch(`${url}/metrics`).then((r) => r.text())
  const pattern = new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, "gm")
  return [...text.matchAll(pattern)]
    .filter((m) => (m[1] ?? "").includes(labels))
    .reduce((sum, m) => sum + Number(m[2]), 0)
}

interface RedisComponent {
  readonly status: string
  readonly detail: { readonly fallback: string; readonly url: string; readonly reason?: string }
}

const redisHealth = (url: string): Promise<{ readonly status: number; readonly redis: RedisComponent }> =>
  fetch(`${url}/health`).then(async (r) => ({
    status: r.status,
    redis: ((await r.json()) as { components: { redis: RedisComponent } }).components.redis
  }))

/** Polls `check` every 50 ms until `holds`, for at most `ms` (a bound on correctness, not on speed). */
const until = <A>(check: () => Promise<A>, holds: (a: A) => boolean, what: string, ms = 20_000) =>
  Effect.promise(async () => {
    const giveUp = performance.now() + ms
    for (;;) {
      const value = await check()
      if (holds(value)) return value
      if (performance.now() > giveUp) throw new Error(`never held within ${ms} ms: ${what}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  })

describe.skipIf(redisBinary === undefined)(
  `sluice serve x2, shared Redis (${redisBinary === undefined ? skipReason : "redis-server"})`,
  () => {
    // Hedging: a fresh instance hedges a chat only after `coldAfter` (30 s) without latency samples, and never
    // before 3x the p95 of recent ones; the one upstream call here takes 1.5 s, so no hedge is due, and the test
    // checks that none was sent rather than turning hedging off. A hedge would be a second attempt of the same
    // (stalled) call, which it should be allowed to be: the shared cache dedupes calls, not attempts.
    it.scopedLive("50 identical concurrent calls spread over two instances cause 1 upstream request", () =>
      Effect.gen(function* () {
        const redis = yield* redisServer
        const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: slow(1500) })
        const [a, b] = yield* twoInstances(sim.url, redis.url)
        // both connected to Redis (a call made before that is answered locally, as with Redis away)
        yield* until(
          () => Promise.all([redisHealth(a), redisHealth(b)]),
          (hs) => hs.every((h) => h.redis.status === "ok"),
          "redis ok on both"
        )
        const answers = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: 50 }, (_, i) => chat(i % 2 === 0 ? a : b, "the same question")))
        )
        assert.deepStrictEqual(
          answers.filter((r) => r.status !== 200),
          []
        )
        assert.strictEqual(new Set(answers.map((r) => r.content)).size, 1, "every caller got the same answer")
        assert.strictEqual(yield* chats(sim), 1, "one upstream request")
        assert.strictEqual(answers.filter((r) => r.cache === "miss").length, 1)
        const hedges = yield* Effect.promise(
          async () => (await metric(a, "sluice_llm_hedges_total")) + (await metric(b, "sluice_llm_hedges_total"))
        )
        assert.strictEqual(hedges, 0, "no hedge was due")
        const waited = yield* Effect.promise(
          async () =>
            (await metric(a, "sluice_shared_cache_waits_total", 'outcome="served"')) +
            (await metric(b, "sluice_shared_cache_waits_total", 'outcome="served"'))
        )
        const hits = answers.filter((r) => r.cache === "hit").length
        assert.isTrue(waited === 1 || hits > 0, "the other instance awaited the call, or found its answer stored")
      })
    )

    it.scopedLive("Redis stopped mid-run: both keep serving with the local fallback, say so, and recover", () =>
      Effect.gen(function* () {
        const redis = yield* redisServer
        const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: slow(0) })
        const [a, b] = yield* twoInstances(sim.url, redis.url)
        const both = <A>(f: (url: string) => Promise<A>) => Promise.all([f(a), f(b)])
        yield* until(
          () => both(redisHealth),
          (hs) => hs.every((h) => h.redis.status === "ok"),
          "redis ok on both"
        )

        yield* redis.stop
        const away = yield* until(
          () => both(redisHealth),
          (hs) => hs.every((h) => h.redis.status === "degraded"),
          "redis degraded on both"
        )
        for (const h of away) {
          assert.strictEqual(h.status, 200, "still ready: Redis is not critical")
          assert.strictEqual(h.redis.detail.fallback, "local")
          assert.strictEqual(h.redis.detail.url, redis.url)
          assert.include(h.redis.detail.reason, "fallback local in force")
        }
        const storeUp = () => both((url) => metric(url, "sluice_shared_store_up", 'store="redis"'))
        assert.deepStrictEqual(yield* until(storeUp, (ups) => ups.every((u) => u === 0), "store_up 0"), [0, 0])
        const during = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: 20 }, (_, i) => chat(i % 2 === 0 ? a : b, `while away ${i % 4}`)))
        )
        assert.deepStrictEqual(
          during.filter((r) => r.status !== 200),
          []
        )

        yield* redis.start
        yield* until(
          () => both(redisHealth),
          (hs) => hs.every((h) => h.redis.status === "ok"),
          "redis ok again on both"
        )
        assert.deepStrictEqual(yield* until(storeUp, (ups) => ups.every((u) => u === 1), "store_up 1"), [1, 1])
        // the shared cache works again: an answer computed on A is a hit on B
        const before = yield* chats(sim)
        const first = yield* until(
          () => chat(a, "after the return"),
          (r) => r.status === 200,
          "a call on A"
        )
        const second = yield* until(
          () => chat(b, "after the return"),
          (r) => r.status === 200,
          "a call on B"
        )
        assert.deepStrictEqual([first.cache, second.cache], ["miss", "hit"])
        assert.strictEqual((yield* chats(sim)) - before, 1)
      })
    )
  }
)
