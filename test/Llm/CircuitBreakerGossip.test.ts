/**
 * Breaker gossip through a real redis-server: breakers (and engines) on separate connections stand for separate
 * instances. Real time (it.scopedLive): Redis and its messages are real; waits poll (`eventually`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Metric, Ref } from "effect"
import type { LlmError } from "../../src/Domain/LlmError.js"
import { TransportError } from "../../src/Domain/LlmError.js"
import { Backends } from "../../src/Llm/Backends.js"
import * as CircuitBreaker from "../../src/Llm/CircuitBreaker.js"
import * as Engine from "../../src/Llm/Engine.js"
import { Llm } from "../../src/Llm/Llm.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import * as Redis from "../../src/Shared/Redis.js"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"
import { chatRequest, eventually, quickRetry } from "./engine.js"

const backend = "http://dead:11434"
const transport = new TransportError({ backend, method: "chat", reason: "connection refused" })

let prefixes = 0

/** `count` connections to one redis-server, under a prefix of the test: one per instance. */
const instances = (count: number) =>
  Effect.gen(function* () {
    const server = yield* redisServer
    const prefix = `g${++prefixes}:`
    const contexts = yield* Effect.forEach(Array.from({ length: count }), () =>
      // a command timeout for a loaded test machine (250 ms by default): what is asserted here is the protocol
      Layer.build(Redis.layerConnection({ url: server.url, prefix, timeout: "3 seconds" }))
    )
    for (const context of contexts) {
      const connection = Context.unsafeGet(context, Redis.Redis)
      if (connection._tag === "Some") assert.isTrue(yield* Redis.ready(connection.value, "5 seconds"))
    }
    return contexts
  })

/** A breaker of `backend` on one instance, with a counted call through it. */
const breakerOn = (context: Context.Context<never>, options: CircuitBreaker.Options) =>
  Effect.gen(function* () {
    const breaker = yield* Effect.provide(CircuitBreaker.make(backend, options), context)
    const calls = yield* Ref.make(0)
    const call = (result: Effect.Effect<string, LlmError>) =>
      Effect.exit(
        breaker.protect(
          Effect.zipRight(
            Ref.update(calls, (n) => n + 1),
            result
          )
        )
      )
    return { breaker, calls, fail: call(Effect.fail(transport)), succeed: call(Effect.succeed("ok")) }
  })

const gossip = (direction: "sent" | "received") =>
  Effect.map(Metric.value(Metric.tagged(Metrics.breakerGossip, "direction", direction)), (s) => s.count)

// The knobs under test: gossip shares exactly a dead trip (`consecutiveFailures` in a row) and its open period
// (`openFor`, the key's expiry); the ratio knobs make a flaky trip reachable, which must stay local. Smaller than the
// defaults (20 in a row, 5 s open) only so that each case reaches its trip and its recovery in a few calls and seconds.
const options = { consecutiveFailures: 3, openFor: "2 seconds", minimumVolume: 4, failureRatio: 0.5 } as const

describe.skipIf(redisBinary === undefined)(
  `CircuitBreaker gossip (${redisBinary === undefined ? skipReason : "redis-server"})`,
  () => {
    it.scopedLive(
      "a dead backend's open reaches the other instance, which then sends it nothing; so does the close",
      () =>
        Effect.gen(function* () {
          const [ca, cb] = yield* instances(2)
          const a = yield* breakerOn(ca!, options)
          const b = yield* breakerOn(cb!, options)
          const [sent, received] = [yield* gossip("sent"), yield* gossip("received")]
          yield* Effect.replicateEffect(a.fail, 3)
          assert.isTrue((yield* a.breaker.stats).dead)
          yield* eventually(b.breaker.state, (s) => s === "open", "B learns of the open", "5 seconds")
          assert.isTrue((yield* b.breaker.stats).dead, "B fails fast like A")
          yield* eventually(gossip("sent"), (n) => n > sent, "counted as sent", "5 seconds")
          yield* eventually(gossip("received"), (n) => n > received, "counted as received", "5 seconds")
          for (let i = 0; i < 5; i++) yield* b.succeed
          assert.strictEqual(yield* Ref.get(b.calls), 0, "B made no call to the dead backend")
          // A's probe succeeds once its period passed: B closes from the news alone, still without a call
          yield* eventually(a.breaker.state, (s) => s === "half-open", "A's open period passes", "5 seconds")
          yield* a.succeed
          assert.strictEqual(yield* a.breaker.state, "closed")
          yield* eventually(b.breaker.state, (s) => s === "closed", "B learns of the close")
          assert.strictEqual(yield* Ref.get(b.calls), 0)
        })
    )

    it.scopedLive("a flaky backend's open (the failure ratio) is not shared", () =>
      Effect.gen(function* () {
        const [ca, cb] = yield* instances(2)
        const a = yield* breakerOn(ca!, options)
        const b = yield* breakerOn(cb!, options)
        yield* a.fail
        yield* a.succeed
        yield* a.fail
        yield* a.fail
        const stats = yield* a.breaker.stats
        assert.deepStrictEqual([stats.state, stats.dead], ["open", false], "A opened on the ratio, not dead")
        // a later message from A proves the earlier ones (had there been any) were delivered: pub/sub keeps order
        const other = yield* Effect.provide(CircuitBreaker.make("http://other:11434", options), ca!)
        const otherOnB = yield* Effect.provide(CircuitBreaker.make("http://other:11434", options), cb!)
        yield* Effect.replicateEffect(Effect.exit(other.protect(Effect.fail(transport))), 3)
        yield* eventually(otherOnB.state, (s) => s === "open", "B hears A's later news")
        assert.strictEqual(yield* b.breaker.state, "closed", "the flaky backend still serves B")
      })
    )

    it.scopedLive("an open of B's own evidence only turns half-open on A's close: B's own probe decides", () =>
      Effect.gen(function* () {
        const [ca, cb] = yield* instances(2)
        const a = yield* breakerOn(ca!, { ...options, openFor: "300 millis" })
        const b = yield* breakerOn(cb!, { ...options, openFor: "1 minute" })
        // B opens on its own evidence (the ratio: not news), for a minute
        for (const step of [b.fail, b.succeed, b.fail, b.fail]) yield* step
        assert.strictEqual(yield* b.breaker.state, "open")
        yield* Effect.replicateEffect(a.fail, 3)
        yield* eventually(b.breaker.stats, (s) => s.dead, "B learns the backend is dead", "5 seconds")
        assert.isAbove((yield* b.breaker.stats).openUntilMs! - Date.now(), 30_000, "B keeps its own period")
        yield* eventually(a.breaker.state, (s) => s === "half-open", "A's open period passes", "5 seconds")
        yield* a.succeed
        yield* eventually(b.breaker.state, (s) => s === "half-open", "B probes at once, not in a minute", "5 seconds")
        yield* b.succeed
        assert.strictEqual(yield* b.breaker.state, "closed")
        assert.strictEqual(yield* Ref.get(b.calls), 5)
      })
    )

    it.scopedLive("an instance that starts while the backend is dead starts with its breaker open", () =>
      Effect.gen(function* () {
        const [ca, cc] = yield* instances(2)
        const a = yield* breakerOn(ca!, { ...options, openFor: "1 minute" })
        yield* Effect.replicateEffect(a.fail, 3)
        // the news is published in the background: wait until it is stored
        const late = yield* eventually(
          Effect.flatMap(breakerOn(cc!, options), (c) => Effect.map(c.breaker.state, (state) => ({ c, state }))),
          ({ state }) => state === "open",
          "a breaker made later recalls the open"
        )
        yield* late.c.succeed
        assert.strictEqual(yield* Ref.get(late.c.calls), 0)
      })
    )

    it.scopedLive(
      "two engines over one dead backend: the second opens from the gossip, 0 attempts; recovery shared",
      () =>
        Effect.gen(function* () {
          const [ca, cb] = yield* instances(2)
          const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config: fast() })
          const engine = (context: Context.Context<never>) =>
            Layer.build(
              Engine.layer({
                // the open period is the knob under test (the shared close comes after it); the trip keeps its default
                backends: [{ url: sim.url, breaker: { openFor: "3 seconds" } }],
                retry: { ...quickRetry, maxRetries: 3 },
                defaultFallbacks: []
              }).pipe(Layer.provide(Layer.succeedContext(context)))
            )
          const [ea, eb] = [yield* engine(ca!), yield* engine(cb!)]
          const [llmA, llmB] = [Context.get(ea, Llm), Context.get(eb, Llm)]
          const [breakerA, breakerB] = [
            Context.get(ea, Backends).all[0]!.breaker,
            Context.get(eb, Backends).all[0]!.breaker
          ]
          const chats = Effect.map(sim.stats, (s) => s.requests["/api/chat"] ?? 0)
          yield* llmB.chat(chatRequest("B is up"))
          yield* sim.setFaults({ error500: 1 })
          // A alone meets the dead backend until its breaker opens (20 failures in a row, the shipped rule)
          let i = 0
          while ((yield* breakerA.state) === "closed") yield* Effect.exit(llmA.chat(chatRequest(`A ${i++}`)))
          assert.isTrue((yield* breakerA.stats).dead)
          yield* eventually(breakerB.state, (s) => s === "open", "B's breaker opens from the gossip")
          const seen = yield* chats
          for (let j = 0; j < 10; j++) {
            const error = yield* Effect.flip(llmB.chat(chatRequest(`B ${j}`)))
            assert.strictEqual(error._tag, "CircuitOpen")
          }
          assert.strictEqual(yield* chats, seen, "B made 0 attempts to the dead backend")
          // the backend comes back: A's probe closes A, and B closes from the news, having probed nothing
          yield* sim.setFaults({ error500: 0 })
          yield* eventually(breakerA.state, (s) => s === "half-open", "A's open period passes", "5 seconds")
          yield* llmA.chat(chatRequest("A probes"))
          yield* eventually(breakerB.state, (s) => s === "closed", "B closes from the gossip")
          assert.strictEqual(yield* chats, seen + 1, "only A's probe reached the backend")
          yield* llmB.chat(chatRequest("B is up again"))
        })
    )
  }
)
