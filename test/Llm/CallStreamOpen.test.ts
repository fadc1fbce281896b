/**
 * `Llm.chatStreamOpen` (CallStream.open) end to end over the simulator: the open waits in the line as an Effect and
 * succeeds with the chunks still to come; a failure before the first chunk (the line's deadline, an unknown model)
 * fails the open itself, after fallbacks; an interrupt while queued leaves the line; the slot is freed when the
 * stream ends or its Scope closes; the cache records the streamed miss. Real servers, so real time; a test waits
 * for a condition (`eventually`), never for a fixed time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Effect, Exit, Fiber, Layer, Option, Scope, Stream } from "effect"
import { Backends } from "../../src/Llm/Backends.js"
import * as Engine from "../../src/Llm/Engine.js"
import * as Fallback from "../../src/Llm/Fallback.js"
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
  const slots = Context.get(context, Backends).all[0]!.slots
  return { sim, slots, llm: Context.get(context, Llm), cache: Context.get(context, ResponseCache) }
})

const long = (text: string) => ({ ...chatRequest(text), options: { num_predict: 20 } })

const endsDone = (chunks: Chunk.Chunk<{ readonly done?: boolean | undefined }>) =>
  Chunk.last(chunks).pipe(
    Option.map((c) => c.done === true),
    Option.getOrElse(() => false)
  )

describe("Llm.chatStreamOpen", () => {
  it.scopedLive("opens once the first chunk is at hand, gives the rest, and the cache records the miss", () =>
    Effect.gen(function* () {
      const { sim, slots, llm, cache } = yield* slowEngine
      const chunks = yield* Effect.scoped(Effect.flatMap(llm.chatStreamOpen(long("once")), Stream.runCollect))
      assert.isTrue(endsDone(chunks), "the last chunk is done")
      assert.isAbove(chunks.length, 1)
      assert.strictEqual((yield* slots.snapshot).inFlight, 0, "the slot is free once the stream ended")
      assert.strictEqual((yield* cache.stats).misses, 1)
      const again = yield* Effect.scoped(Effect.flatMap(llm.chatStreamOpen(long("once")), Stream.runCollect))
      assert.deepStrictEqual(Chunk.toReadonlyArray(again), Chunk.toReadonlyArray(chunks), "replayed from the cache")
      assert.strictEqual((yield* sim.stats).requests["/api/chat"], 1)
    })
  )

  it.scopedLive("waits in the line as an Effect: its deadline fails the open, an interrupt leaves the line", () =>
    Effect.gen(function* () {
      const { sim, slots, llm } = yield* slowEngine
      const holder = yield* Effect.fork(llm.chat(long("holder")))
      yield* eventually(slots.snapshot, (s) => s.inFlight === 1, "the holder holds the slot")
      const late = yield* Effect.flip(Effect.scoped(llm.chatStreamOpen(long("late"), { timeout: "100 millis" })))
      assert.deepInclude(late, { _tag: "TimeoutError", phase: "deadline", timeoutMs: 100 })
      const queued = yield* Effect.fork(
        Effect.scoped(Effect.flatMap(llm.chatStreamOpen(long("queued")), Stream.runDrain))
      )
      yield* eventually(slots.snapshot, (s) => s.queued === 1, "the open waits in the line")
      yield* Fiber.interrupt(queued)
      assert.strictEqual((yield* slots.snapshot).queued, 0)
      yield* Fiber.join(holder)
      assert.strictEqual((yield* slots.snapshot).inFlight, 0)
      assert.strictEqual((yield* sim.stats).requests["/api/chat"], 1, "neither the late nor the queued one went out")
    })
  )

  it.scopedLive("closing the Scope before the stream ends aborts upstream and frees the slot", () =>
    Effect.gen(function* () {
      const { sim, slots, llm } = yield* slowEngine
      const scope = yield* Scope.make()
      const rest = yield* Scope.extend(llm.chatStreamOpen(long("cut")), scope)
      assert.strictEqual((yield* slots.snapshot).inFlight, 1, "the run holds its slot while open")
      const first = yield* Stream.runCollect(Stream.take(rest, 1))
      assert.strictEqual(first.length, 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* slots.snapshot).inFlight, 0)
      yield* eventually(sim.stats, (s) => (s.inFlight["llama3.2:latest"] ?? 0) === 0, "the simulator stops generating")
    })
  )

  it.scopedLive("an unknown model fails the open, after its fallbacks", () =>
    Effect.gen(function* () {
      const { llm } = yield* slowEngine
      const error = yield* Effect.flip(
        Effect.scoped(llm.chatStreamOpen(chatRequest("hi", "no-such-model"), { fallbacks: [] }))
      )
      assert.strictEqual(error._tag, "ModelNotFound")
      const alternate = yield* Effect.scoped(
        Effect.flatMap(
          llm.chatStreamOpen(chatRequest("hi", "no-such-model"), { fallbacks: [Fallback.alternate("llama3.2")] }),
          Stream.runCollect
        )
      )
      assert.isTrue(endsDone(alternate))
      assert.strictEqual(Chunk.unsafeHead(alternate).model, "llama3.2")
    })
  )
})
