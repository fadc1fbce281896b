/**
 * Admission (Llm/Admission.ts) end to end over a slow simulator with one slot: a queued call's wait counts
 * against its deadline, calls an identical call in flight answers skip the line, and interrupted queued calls
 * leave it and hold no slot. Each test has its own simulator and engine; a test waits for a condition
 * (`eventually`), never for a fixed time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Effect, Fiber, Layer, Option, Ref, Stream } from "effect"
import { Backends } from "../../src/Llm/Backends.js"
import { keyOf } from "../../src/Llm/CacheKey.js"
import type { Slots } from "../../src/Llm/Scheduler/Slots.js"
import * as Budget from "../../src/Llm/Budget.js"
import * as Engine from "../../src/Llm/Engine.js"
import { Llm } from "../../src/Llm/Llm.js"
import { ResponseCache } from "../../src/Llm/ResponseCache.js"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { chatRequest, eventually } from "./engine.js"

/** A model that takes about 20 × 30 ms per call, one call at a time at Sluice. */
const slowEngine = Effect.gen(function* () {
  const config = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 30 }))
  const sim = yield* Simulator.make({ port: 0, host: "127.0.0.1", config })
  const context = yield* Layer.build(Engine.layer({ backends: [{ url: sim.url, slots: 1 }] }))
  return {
    sim,
    llm: Context.get(context, Llm),
    backends: Context.get(context, Backends),
    cache: Context.get(context, ResponseCache)
  }
})

const long = (text: string) => ({ ...chatRequest(text), options: { num_predict: 20 } })

/** The engine with its one slot taken by a long call (`first`, "holder"), once the holder holds it. */
const heldEngine = Effect.gen(function* () {
  const engine = yield* slowEngine
  const slots = engine.backends.all[0]!.slots
  const first = yield* Effect.fork(engine.llm.chat(long("holder")))
  yield* eventually(slots.snapshot, (s) => s.inFlight === 1, "the holder holds the slot")
  return { ...engine, slots, first }
})

/** The line's length once it is `n` (polled: forks take their time on a loaded machine). */
const queuedWhen = (slots: Slots, n: number) =>
  eventually(
    Effect.map(slots.snapshot, (s) => s.queued),
    (queued) => queued === n,
    `${n} in the line`
  )

describe("Admission", () => {
  it.scopedLive("a call's wait in the line counts against its deadline", () =>
    Effect.gen(function* () {
      const { sim, llm, first } = yield* heldEngine
      const error = yield* Effect.flip(llm.chat(long("second"), { timeout: "100 millis" }))
      assert.strictEqual(error._tag, "TimeoutError")
      assert.deepInclude(error, { phase: "deadline", timeoutMs: 100 })
      yield* Fiber.join(first)
      assert.strictEqual((yield* sim.stats).requests["/api/chat"], 1, "the timed-out call never reached the backend")
    })
  )

  it.scopedLive("a call that an identical call in flight answers does not queue behind other misses", () =>
    Effect.gen(function* () {
      const { sim, llm, cache, backends } = yield* slowEngine
      const slots = backends.all[0]!.slots
      const done = yield* Ref.make<ReadonlyArray<string>>([])
      const run = (name: string, text: string) =>
        Effect.fork(
          Effect.zipRight(
            llm.chat(long(text)),
            Ref.update(done, (d) => [...d, name])
          )
        )
      const a = yield* run("a", "shared question")
      const shared = keyOf("chat", long("shared question"))
      yield* eventually(cache.answersNow(shared), (answered) => answered, "a's call is in flight")
      const b = yield* run("b", "another question")
      yield* queuedWhen(slots, 1)
      const c = yield* run("c", "shared question")
      yield* Fiber.joinAll([a, b, c])
      const order = yield* Ref.get(done)
      assert.isBelow(order.indexOf("c"), order.indexOf("b"), `c follows a's flight, b waits for the slot: ${order}`)
      assert.strictEqual((yield* sim.stats).requests["/api/chat"], 2)
    })
  )

  it.scopedLive("a call its budget already refuses fails at once instead of waiting in the line", () =>
    Effect.gen(function* () {
      const { llm, slots, first } = yield* heldEngine
      const spent = Budget.scoped("tick", { calls: 0 })
      const error = yield* Effect.flip(spent(llm.chat(long("over budget"))))
      assert.strictEqual(error._tag, "BudgetExceeded")
      assert.isNull(first.unsafePoll(), "the holder still runs: the refused call did not wait for the slot")
      assert.strictEqual((yield* slots.snapshot).queued, 0)
      yield* Fiber.join(first)
    })
  )

  it.scopedLive("streams wait for admission too: the wait counts against their deadline, interrupted they leave", () =>
    Effect.gen(function* () {
      const { sim, llm, slots, first } = yield* heldEngine
      const error = yield* Effect.flip(Stream.runDrain(llm.chatStream(long("late stream"), { timeout: "100 millis" })))
      assert.deepInclude(error, { _tag: "TimeoutError", phase: "deadline", timeoutMs: 100 })
      const queued = yield* Effect.fork(Stream.runDrain(llm.chatStream(long("queued stream"))))
      assert.strictEqual(yield* queuedWhen(slots, 1), 1, "the stream waits in the line")
      yield* Fiber.interrupt(queued)
      assert.strictEqual((yield* slots.snapshot).queued, 0)
      yield* Fiber.join(first)
      const chunks = yield* Stream.runCollect(llm.chatStream(long("after")))
      assert.isTrue(
        Chunk.last(chunks).pipe(
          Option.map((c) => c.done === true),
          Option.getOrElse(() => false)
        )
      )
      assert.strictEqual((yield* slots.snapshot).inFlight, 0)
      assert.strictEqual((yield* sim.stats).requests["/api/chat"], 2, "only the holder and the last stream went out")
    })
  )

  it.scopedLive("interrupted queued calls leave the line and hold no slot", () =>
    Effect.gen(function* () {
      const { sim, llm, slots, first } = yield* heldEngine
      const queued = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) => Effect.fork(llm.chat(long(`queued ${i}`)))
      )
      assert.strictEqual(yield* queuedWhen(slots, 50), 50)
      yield* Fiber.interruptAll(queued)
      assert.strictEqual((yield* slots.snapshot).queued, 0)
      yield* Fiber.join(first)
      const after = yield* slots.snapshot
      assert.strictEqual(after.inFlight, 0)
      yield* llm.chat(long("after"))
      assert.strictEqual((yield* sim.stats).requests["/api/chat"], 2, "only the holder and the last call went out")
    })
  )
})
