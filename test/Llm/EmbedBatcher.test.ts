/** EmbedBatcher: the window, the size cap, grouping, dedup, failure fan-out, interruption, the simulator. */
import { assert, describe, it, layer } from "@effect/vitest"
import { Duration, Effect, Either, Exit, Fiber, Layer, Option, Ref, TestClock } from "effect"
import type { EmbedRequest, EmbedResponse } from "../../src/Domain/Embed.js"
import { type LlmError, ServerBusy } from "../../src/Domain/LlmError.js"
import * as EmbedBatcher from "../../src/Llm/EmbedBatcher.js"
import { OllamaClient } from "../../src/Ollama/OllamaClient.js"
import { Simulator } from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"

const inputsOf = (req: EmbedRequest): ReadonlyArray<string> =>
  req.input === "" ? [] : typeof req.input === "string" ? [req.input] : (req.input ?? [])

/** A fake `/api/embed`: the vector of input i is [input.length, i]; the token count is the total length. */
const fakeEmbed = (latency: Duration.DurationInput = "0 millis") =>
  Effect.gen(function* () {
    const calls = yield* Ref.make<ReadonlyArray<EmbedRequest>>([])
    const embedBatch = (req: EmbedRequest): Effect.Effect<EmbedResponse, LlmError> =>
      Effect.zipRight(
        Effect.zipRight(
          Ref.update(calls, (cs) => [...cs, req]),
          Effect.sleep(latency)
        ),
        Effect.sync(() => {
          const inputs = inputsOf(req)
          return {
            model: req.model,
            embeddings: inputs.map((text, i) => [text.length, i]),
            prompt_eval_count: inputs.reduce((n, text) => n + text.length, 0)
          }
        })
      )
    return { calls, embedBatch }
  })

const texts = (n: number, prefix = "text") => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)

/** Starts one fiber per text (independent callers), then lets the window pass. */
const embedAll = (batcher: EmbedBatcher.EmbedBatcher, reqs: ReadonlyArray<EmbedBatcher.EmbedOne>) =>
  Effect.gen(function* () {
    const fibers = yield* Effect.forEach(reqs, (req) => Effect.fork(batcher.embed(req)))
    yield* TestClock.adjust("5 millis")
    return yield* Effect.forEach(fibers, Fiber.join)
  })

describe("EmbedBatcher", () => {
  it.scoped("10 calls within the window make one call with 10 inputs; each caller gets its own vector", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed()
      const batcher = yield* EmbedBatcher.make(fake.embedBatch)
      const inputs = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g", "hh", "iii", "jjjj"]
      const results = yield* embedAll(
        batcher,
        inputs.map((input) => ({ model: "all-minilm", input }))
      )
      const calls = yield* Ref.get(fake.calls)
      assert.strictEqual(calls.length, 1)
      assert.deepStrictEqual(calls[0]!.input, inputs)
      assert.deepStrictEqual(
        results.map((r) => r.embeddings),
        inputs.map((text, i) => [[text.length, i]])
      )
      assert.deepStrictEqual(yield* batcher.stats, { batches: 1, requests: 10, deduplicated: 0, maxBatchSeen: 10 })
    })
  )

  it.scoped("nothing is sent before the window has passed", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed()
      const batcher = yield* EmbedBatcher.make(fake.embedBatch, { window: "20 millis" })
      const fiber = yield* Effect.fork(batcher.embed({ model: "m", input: "x" }))
      yield* TestClock.adjust("19 millis")
      assert.strictEqual((yield* Ref.get(fake.calls)).length, 0)
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual((yield* Fiber.join(fiber)).embeddings, [[1, 0]])
    })
  )

  it.scoped("150 calls with maxBatch 64 make ceil(150/64) = 3 calls", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed()
      const batcher = yield* EmbedBatcher.make(fake.embedBatch, { maxBatch: 64 })
      const inputs = texts(150)
      const results = yield* embedAll(
        batcher,
        inputs.map((input) => ({ model: "m", input }))
      )
      const calls = yield* Ref.get(fake.calls)
      assert.deepStrictEqual(
        calls.map((c) => inputsOf(c).length),
        [64, 64, 22]
      )
      assert.deepStrictEqual(
        results.map((r) => r.embeddings[0]![0]),
        inputs.map((t) => t.length)
      )
      assert.strictEqual((yield* batcher.stats).maxBatchSeen, 64)
    })
  )

  it.scoped("requests are grouped by model and by the options that matter", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed()
      const batcher = yield* EmbedBatcher.make(fake.embedBatch)
      const results = yield* embedAll(batcher, [
        { model: "all-minilm", input: "a" },
        { model: "nomic-embed-text", input: "b" },
        { model: "All-MiniLM:latest", input: "c" },
        { model: "all-minilm", input: "d", dimensions: 8 },
        { model: "nomic-embed-text", input: "e" },
        { model: "all-minilm", input: "f", dimensions: 8 }
      ])
      const calls = yield* Ref.get(fake.calls)
      const sent = calls.map((c) => [c.model, c.dimensions, c.input])
      assert.sameDeepMembers(sent, [
        ["all-minilm", undefined, ["a", "c"]],
        ["nomic-embed-text", undefined, ["b", "e"]],
        ["all-minilm", 8, ["d", "f"]]
      ])
      assert.deepStrictEqual(
        results.map((r) => r.embeddings[0]![1]),
        [0, 0, 1, 0, 1, 1]
      )
    })
  )

  it.scoped("identical texts are sent once and every caller gets the vector", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed()
      const batcher = yield* EmbedBatcher.make(fake.embedBatch)
      const inputs = ["same", "other", "same", "same", "other"]
      const results = yield* embedAll(
        batcher,
        inputs.map((input) => ({ model: "m", input }))
      )
      const calls = yield* Ref.get(fake.calls)
      assert.deepStrictEqual(calls[0]!.input, ["same", "other"])
      assert.deepStrictEqual(
        results.map((r) => r.embeddings),
        [[[4, 0]], [[5, 1]], [[4, 0]], [[4, 0]], [[5, 1]]]
      )
      assert.strictEqual((yield* batcher.stats).deduplicated, 3)
    })
  )

  it.scoped("prompt_eval_count is split in proportion to text length and adds up to the batch total", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed()
      const batcher = yield* EmbedBatcher.make(fake.embedBatch)
      const results = yield* embedAll(
        batcher,
        ["aa", "bbbb", "cccccc"].map((input) => ({ model: "m", input }))
      )
      assert.deepStrictEqual(
        results.map((r) => r.prompt_eval_count),
        [2, 4, 6]
      )
      assert.deepStrictEqual(EmbedBatcher.apportion(10, [1, 1, 1]), [4, 3, 3])
      assert.deepStrictEqual(EmbedBatcher.apportion(0, [0, 0]), [0, 0])
    })
  )

  it.scoped("a failed call fails every member with its error", () =>
    Effect.gen(function* () {
      const busy = new ServerBusy({ backend: "http://b", method: "embed", body: "server busy" })
      const calls = yield* Ref.make(0)
      const batcher = yield* EmbedBatcher.make(() =>
        Effect.zipRight(
          Ref.update(calls, (n) => n + 1),
          Effect.fail(busy)
        )
      )
      const fibers = yield* Effect.forEach(texts(4), (input) =>
        Effect.fork(Effect.either(batcher.embed({ model: "m", input })))
      )
      yield* TestClock.adjust("5 millis")
      const results = yield* Effect.forEach(fibers, Fiber.join)
      assert.strictEqual(yield* Ref.get(calls), 1)
      assert.strictEqual(results.length, 4)
      // Effect.withSpan hands on a copy of the error, so compare what it says
      for (const result of results) {
        const error = Either.getLeft(result).pipe(Option.getOrThrow)
        assert.deepStrictEqual([error._tag, error.message], ["ServerBusy", "server busy"])
      }
    })
  )

  it.scoped("an answer with the wrong number of vectors fails every member with DecodeError", () =>
    Effect.gen(function* () {
      const batcher = yield* EmbedBatcher.make((req) => Effect.succeed({ model: req.model, embeddings: [[1]] }))
      const fibers = yield* Effect.forEach(["a", "b"], (input) =>
        Effect.fork(Effect.either(batcher.embed({ model: "m", input })))
      )
      yield* TestClock.adjust("5 millis")
      const results = yield* Effect.forEach(fibers, Fiber.join)
      for (const result of results) {
        assert.isTrue(Either.isLeft(result) && result.left._tag === "DecodeError")
      }
    })
  )

  it.scoped("a caller interrupted before the flush leaves the batch; the others are answered", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed()
      const batcher = yield* EmbedBatcher.make(fake.embedBatch)
      const [a, b, c] = yield* Effect.forEach(["a", "bb", "ccc"], (input) =>
        Effect.fork(batcher.embed({ model: "m", input }))
      )
      yield* TestClock.adjust("2 millis")
      yield* Fiber.interrupt(b!)
      yield* TestClock.adjust("3 millis")
      assert.deepStrictEqual((yield* Fiber.join(a!)).embeddings, [[1, 0]])
      assert.deepStrictEqual((yield* Fiber.join(c!)).embeddings, [[3, 1]])
      assert.deepStrictEqual((yield* Ref.get(fake.calls))[0]!.input, ["a", "ccc"])
    })
  )

  it.scoped("a caller interrupted while its batch is in flight does not break the batch", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed("10 millis")
      const batcher = yield* EmbedBatcher.make(fake.embedBatch)
      const [a, b, c] = yield* Effect.forEach(["a", "bb", "ccc"], (input) =>
        Effect.fork(batcher.embed({ model: "m", input }))
      )
      yield* TestClock.adjust("6 millis")
      const exit = yield* Fiber.interrupt(b!)
      yield* TestClock.adjust("10 millis")
      assert.isTrue(Exit.isInterrupted(exit))
      assert.deepStrictEqual((yield* Fiber.join(a!)).embeddings, [[1, 0]])
      assert.deepStrictEqual((yield* Fiber.join(c!)).embeddings, [[3, 2]])
    })
  )

  it.scoped("calls after the window form a new batch", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed()
      const batcher = yield* EmbedBatcher.make(fake.embedBatch)
      yield* embedAll(batcher, [{ model: "m", input: "first" }])
      yield* embedAll(batcher, [{ model: "m", input: "second" }])
      const calls = yield* Ref.get(fake.calls)
      assert.deepStrictEqual(
        calls.map((c) => c.input),
        [["first"], ["second"]]
      )
    })
  )

  it.scoped("an empty text goes straight through on its own", () =>
    Effect.gen(function* () {
      const fake = yield* fakeEmbed()
      const batcher = yield* EmbedBatcher.make(fake.embedBatch)
      const result = yield* batcher.embed({ model: "m", input: "" })
      assert.deepStrictEqual(result.embeddings, [])
      assert.deepStrictEqual((yield* Ref.get(fake.calls))[0]!.input, "")
    })
  )
})

const client = Layer.unwrapEffect(Effect.map(Simulator, (sim) => OllamaClient.layer({ host: sim.url })))
const both = client.pipe(Layer.provideMerge(Simulator.layerTest(fast())))

describe("EmbedBatcher against the simulator", () => {
  layer(both, { excludeTestServices: true })((it) => {
    it.scoped("100 concurrent embeds with maxBatch 32 make 4 /api/embed calls with the same vectors", () =>
      Effect.gen(function* () {
        const ollama = yield* OllamaClient
        const sim = yield* Simulator
        const batcher = yield* EmbedBatcher.make(ollama.embed, { maxBatch: 32 })
        const inputs = texts(100, "the quick brown fox")
        const before = (yield* sim.stats).requests["/api/embed"] ?? 0
        const results = yield* Effect.forEach(inputs, (input) => batcher.embed({ model: "all-minilm", input }), {
          concurrency: "unbounded"
        })
        const after = (yield* sim.stats).requests["/api/embed"] ?? 0
        assert.strictEqual(after - before, 4)
        const direct = yield* Effect.forEach(inputs, (input) => ollama.embed({ model: "all-minilm", input }), {
          concurrency: 8
        })
        assert.deepStrictEqual(
          results.map((r) => r.embeddings),
          direct.map((r) => r.embeddings)
        )
      })
    )
  })
})
