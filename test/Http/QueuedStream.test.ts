/**
 * A streamed gateway request that waits for its slot (the route opens its stream first, Llm.chatStreamOpen): it
 * waits in the engine's line before any response exists, and a client that gives up while it waits leaves the line
 * without reaching the backend. The line is read from `/metrics` (`sluice_queue_depth`, sampled before each scrape).
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { GatewayUrl, layer as gateway } from "./gateway.js"

const slowStream = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 200 }))
const body = (text: string) => JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: text }] })

/** The calls in the engine's line now, from the gateway's own metrics. */
const queued = Effect.flatMap(GatewayUrl, (url) =>
  Effect.promise(async () => {
    const text = await (await fetch(`${url}/metrics`)).text()
    return text
      .split("\n")
      .filter((l) => l.startsWith("sluice_queue_depth{"))
      .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0)
  })
)

/** Polls `queued` until it is `n` (a bound on correctness, not on speed). */
const queuedWhen = (n: number) =>
  queued.pipe(
    Effect.filterOrFail((depth) => depth === n),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds"))),
    Effect.orDie
  )

layer(gateway(slowStream, { backend: { slots: 1 } }), { excludeTestServices: true })(
  "gateway: a queued stream",
  (it) => {
    it.effect("waits in the line before its response exists; a client that gives up leaves the line", () =>
      Effect.gen(function* () {
        const url = yield* GatewayUrl
        const sim = yield* Simulator
        const holder = new AbortController()
        yield* Effect.promise(async () => {
          const response = await fetch(`${url}/api/chat`, {
            method: "POST",
            body: body("holder"),
            signal: holder.signal
          })
          await response.body!.getReader().read()
        })
        const waiter = new AbortController()
        let answered = false
        const waiting = fetch(`${url}/api/chat`, { method: "POST", body: body("waiter"), signal: waiter.signal }).then(
          () => {
            answered = true
          },
          () => undefined
        )
        assert.strictEqual(yield* queuedWhen(1), 1, "the second stream waits in the line")
        assert.isFalse(answered, "no response (not even its status) while it waits")
        waiter.abort()
        yield* Effect.promise(() => waiting)
        assert.strictEqual(yield* queuedWhen(0), 0, "the client that gave up left the line")
        holder.abort()
        assert.strictEqual((yield* sim.stats).requests["/api/chat"], 1, "only the holder reached the backend")
      })
    )
  }
)
