/**
 * The response cache's shared level against a real redis-server: two caches on two connections stand for two
 * instances. Real time (it.scopedLive): Redis and its timers are real.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Deferred, Effect, Either, Fiber, Layer, Metric, Stream } from "effect"
import { type Options, ResponseCache } from "../../src/Llm/ResponseCache.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import * as Redis from "../../src/Shared/Redis.js"
import * as RedisCache from "../../src/Shared/RedisCache.js"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"

let prefixes = 0
const timeout = "3 seconds"

/** A cache with its own connection to `url` (an instance), under a prefix of its test, once connected. */
const instance = (url: string, prefix: string, options: Partial<Options> = {}) =>
  Effect.gen(function* () {
    // a command timeout for a loaded test machine (250 ms by default): what is asserted here is the protocol
    const redis = yield* Layer.build(Redis.layerConnection({ url, prefix, timeout }))
    const connection = Context.unsafeGet(redis, Redis.Redis)
    if (connection._tag === "Some") assert.isTrue(yield* Redis.ready(connection.value, "10 seconds"))
    const context = yield* Layer.build(ResponseCache.layer(options).pipe(Layer.provide(Layer.succeedContext(redis))))
    return Context.get(context, ResponseCache)
  })

const setup = (options: Partial<Options> = {}) =>
  Effect.gen(function* () {
    const server = yield* redisServer
    const prefix = `t${++prefixes}:`
    const a = yield* instance(server.url, prefix, options)
    const b = yield* instance(server.url, prefix, options)
    const raw = yield* Redis.connect({ url: server.url })
    assert.isTrue(yield* Redis.ready(raw, "5 seconds"))
    return { server, prefix, a, b, raw }
  })

const waits = (outcome: string) =>
  Effect.map(Metric.value(Metric.tagged(Metrics.sharedCacheWaits, "outcome", outcome)), (state) => state.count)

/** A compute that counts its runs and returns `value` once `gate` opens. */
const gated = <A>(gate: Deferred.Deferred<void>, value: A) => {
  let runs = 0
  return { runs: () => runs, effect: Effect.suspend(() => (runs++, Effect.as(Deferred.await(gate), value))) }
}

describe.skipIf(redisBinary === undefined)(
  `ResponseCache, shared level (${redisBinary === undefined ? skipReason : "redis-server"})`,
  () => {
    it.scopedLive("an identical call in flight on another instance is awaited, not repeated", () =>
      Effect.gen(function* () {
        const { a, b } = yield* setup()
        const gate = yield* Deferred.make<void>()
        const compute = gated(gate, { answer: 42 })
        const served = yield* waits("served")
        const first = yield* Effect.fork(a.get("k", "use", compute.effect))
        // B's call finds A's lock once A holds it
        yield* Effect.repeat(b.answersNow("k"), { until: (locked) => locked, times: 500 })
        const second = yield* Effect.fork(b.get("k", "use", compute.effect))
        const local = yield* Effect.fork(b.get("k", "use", compute.effect))
        yield* Effect.sleep("50 millis")
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(yield* Fiber.join(first), { value: { answer: 42 }, lookup: "miss" })
        assert.deepStrictEqual(yield* Fiber.join(second), { value: { answer: 42 }, lookup: "coalesced" })
        assert.deepStrictEqual(yield* Fiber.join(local), { value: { answer: 42 }, lookup: "coalesced" })
        assert.strictEqual(compute.runs(), 1)
        assert.strictEqual((yield* waits("served")) - served, 1, "one wait on B; B's second call followed locally")
        // later calls on B are local hits
        assert.strictEqual((yield* b.get("k", "use", compute.effect)).lookup, "hit")
      })
    )

    it.scopedLive("a shared entry is a hit on another instance, kept there for the time it has left", () =>
      Effect.gen(function* () {
        const { a, b, raw, prefix } = yield* setup({ ttl: "10 seconds" })
        yield* a.get("k", "use", Effect.succeed("v"))
        const pttl = yield* raw.run("cache", (c) => c.pttl(`${prefix}cache:v:u|k`))
        assert.isTrue(pttl > 0 && pttl <= 10_000)
        assert.deepStrictEqual(yield* b.get("k", "use", Effect.die("not computed")), { value: "v", lookup: "hit" })
        assert.strictEqual((yield* b.stats).hits, 1)
        // streams: a complete recording on A replays on B
        const isLast = (n: number) => n === 3
        yield* Stream.runCollect(a.stream("s", "use", Stream.make(1, 2, 3), isLast))
        const replay = yield* b.lookupStream("s", "use", Stream.die("not streamed"), isLast)
        assert.strictEqual(replay.lookup, "hit")
        assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Stream.runCollect(replay.stream)), [1, 2, 3])
      })
    )

    it.scopedLive("when the lock holder dies, a waiter takes over once its lock expires (polling)", () =>
      Effect.gen(function* () {
        const { b, raw, prefix } = yield* setup()
        // a holder that died: a lock nobody renews
        yield* raw.run("cache", (c) => c.set(`${prefix}cache:lock:u|k`, "dead", "PX", 700))
        const takeovers = yield* waits("takeover")
        const answer = yield* b.get("k", "use", Effect.succeed("mine"))
        assert.deepStrictEqual(answer, { value: "mine", lookup: "miss" })
        assert.strictEqual((yield* waits("takeover")) - takeovers, 1)
        assert.isNull(yield* raw.run("cache", (c) => c.get(`${prefix}cache:lock:u|k`)), "released")
      })
    )

    it.scopedLive("a holder that fails releases its lock at once: the waiter takes over without a poll", () =>
      Effect.gen(function* () {
        const { a, b } = yield* setup()
        const gate = yield* Deferred.make<void>()
        const failing = Effect.zipRight(Deferred.await(gate), Effect.fail("upstream failed"))
        const first = yield* Effect.fork(Effect.either(a.get("k", "use", failing)))
        yield* Effect.repeat(b.answersNow("k"), { until: (locked) => locked, times: 500 })
        const second = yield* Effect.fork(b.get("k", "use", Effect.succeed("b's own")))
        yield* Effect.sleep("20 millis")
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(yield* Fiber.join(first), Either.left("upstream failed"))
        assert.deepStrictEqual(yield* Fiber.join(second), { value: "b's own", lookup: "miss" })
      })
    )

    it.scopedLive("the wait is bounded by the call's deadline", () =>
      Effect.gen(function* () {
        const { b, raw, prefix } = yield* setup()
        yield* raw.run("cache", (c) => c.set(`${prefix}cache:lock:u|k`, "stuck", "PX", 60_000))
        const bound = { deadline: "300 millis" as const, waitedMs: 0, expired: () => "deadline passed" }
        const started = performance.now()
        const answer = yield* Effect.either(b.get("k", "use", Effect.succeed("never"), bound))
        assert.deepStrictEqual(answer, Either.left("deadline passed"))
        assert.isBelow(performance.now() - started, 5_000, "a bound on correctness, not speed")
      })
    )

    it.scopedLive("Redis away: calls are answered locally, never failed by the cache", () =>
      Effect.gen(function* () {
        const { server, a, b } = yield* setup()
        yield* server.stop
        assert.deepStrictEqual(yield* a.get("k", "use", Effect.succeed("a")), { value: "a", lookup: "miss" })
        assert.deepStrictEqual(yield* b.get("k", "use", Effect.succeed("b")), { value: "b", lookup: "miss" })
        assert.isFalse(yield* b.answersNow("other"))
        assert.strictEqual((yield* b.get("k", "use", Effect.die("local hit"))).lookup, "hit")
      })
    )

    it.scopedLive("the shared level keeps its bounds: entries over the cap evict the oldest", () =>
      Effect.gen(function* () {
        const { a, raw, prefix } = yield* setup({ maxEntries: 2 })
        for (const key of ["k1", "k2", "k3"]) yield* a.get(key, "use", Effect.succeed(key))
        const exists = (key: string) => raw.run("cache", (c) => c.exists(`${prefix}cache:v:u|${key}`))
        assert.deepStrictEqual([yield* exists("k1"), yield* exists("k2"), yield* exists("k3")], [0, 1, 1])
        assert.strictEqual(yield* raw.run("cache", (c) => c.zcard(`${prefix}cache:index`)), 2)
        const bytes = Number(yield* raw.run("cache", (c) => c.get(`${prefix}cache:bytes`)))
        assert.isAbove(bytes, 0)
        yield* a.invalidate("k3")
        assert.strictEqual(yield* exists("k3"), 0)
        assert.strictEqual(yield* raw.run("cache", (c) => c.zcard(`${prefix}cache:index`)), 1)
      })
    )
  }
)

describe("RedisCache encoding", () => {
  it("round-trips small values as JSON and large ones deflated", () => {
    const small = { message: { role: "assistant", content: "hi" }, done: true }
    const large = { content: "lorem ipsum ".repeat(2000) }
    const smallData = RedisCache.encode(small)!
    const largeData = RedisCache.encode(large)!
    assert.strictEqual(String.fromCharCode(smallData[0]!), "j")
    assert.strictEqual(String.fromCharCode(largeData[0]!), "z")
    assert.isBelow(largeData.length, JSON.stringify(large).length / 10)
    assert.deepStrictEqual(RedisCache.decode(smallData), small)
    assert.deepStrictEqual(RedisCache.decode(largeData), large)
    assert.isUndefined(RedisCache.decode(Buffer.from("not ours")))
    assert.isUndefined(RedisCache.encode(() => 1))
  })
})
