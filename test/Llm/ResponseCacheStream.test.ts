import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option, Stream, TestClock } from "effect"
import { type Options, ResponseCache } from "../../src/Llm/ResponseCache.js"

const withCache = (options: Partial<Options>) => Effect.provide(ResponseCache.layer(options))

interface Chunk {
  readonly n: number
  readonly done: boolean
}
const isDone = (chunk: Chunk) => chunk.done
const chunks: ReadonlyArray<Chunk> = [
  { n: 1, done: false },
  { n: 2, done: false },
  { n: 3, done: true }
]
const countingStream = (stream: Stream.Stream<Chunk, string>) => {
  let runs = 0
  return {
    runs: () => runs,
    stream: Stream.suspend(() => {
      runs++
      return stream
    })
  }
}

describe("ResponseCache (streams)", () => {
  it.effect("passes a miss through chunk by chunk, stores it when complete, then replays it", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const gate = yield* Deferred.make<void>()
      const seen: Array<Chunk> = []
      const upstream = countingStream(
        Stream.concat(
          Stream.fromIterable(chunks.slice(0, 2)),
          Stream.fromEffect(Effect.as(Deferred.await(gate), chunks[2]!))
        )
      )
      const miss = yield* cache.lookupStream("k", "use", upstream.stream, isDone)
      assert.strictEqual(miss.lookup, "miss")
      const fiber = yield* Effect.fork(Stream.runForEach(miss.stream, (c) => Effect.sync(() => seen.push(c))))
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(seen, chunks.slice(0, 2))
      assert.strictEqual((yield* cache.stats).entries, 0)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(seen, chunks)
      const hit = yield* cache.lookupStream("k", "use", upstream.stream, isDone)
      assert.strictEqual(hit.lookup, "hit")
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(hit.stream)), chunks)
      assert.deepStrictEqual(
        Array.from(yield* Stream.runCollect(cache.stream("k", "use", upstream.stream, isDone))),
        chunks
      )
      assert.strictEqual(upstream.runs(), 1)
    }).pipe(withCache({}))
  )

  it.effect("does not store a failed, cut, or unfinished stream", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const failing = Stream.concat(Stream.fromIterable(chunks.slice(0, 2)), Stream.fail("boom"))
      assert.strictEqual(yield* Effect.flip(Stream.runDrain(cache.stream("a", "use", failing, isDone))), "boom")
      const cut = yield* Stream.runCollect(
        cache.stream("b", "use", Stream.fromIterable(chunks), isDone).pipe(Stream.take(2))
      )
      assert.strictEqual(cut.length, 2)
      yield* Stream.runDrain(cache.stream("c", "use", Stream.fromIterable(chunks.slice(0, 2)), isDone))
      yield* Stream.runDrain(cache.stream("d", "use", Stream.empty, isDone))
      const stats = yield* cache.stats
      assert.deepStrictEqual([stats.entries, stats.misses], [0, 4])
      for (const key of ["a", "b", "c", "d"]) {
        assert.strictEqual((yield* cache.lookupStream(key, "use", Stream.fromIterable(chunks), isDone)).lookup, "miss")
      }
    }).pipe(withCache({}))
  )

  it.effect("stores a stream whose consumer stops at the done chunk", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const upstream = countingStream(Stream.concat(Stream.fromIterable(chunks), Stream.never))
      const first = yield* Stream.runCollect(
        cache.stream("k", "use", upstream.stream, isDone).pipe(Stream.takeUntil(isDone))
      )
      assert.deepStrictEqual(Array.from(first), chunks)
      const replay = yield* cache.lookupStream("k", "use", upstream.stream, isDone)
      assert.strictEqual(replay.lookup, "hit")
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(replay.stream)), chunks)
      assert.strictEqual(upstream.runs(), 1)
    }).pipe(withCache({}))
  )

  it.effect("does not store a stream interrupted midway", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const upstream = Stream.concat(Stream.fromIterable(chunks.slice(0, 2)), Stream.never)
      const fiber = yield* Effect.fork(Stream.runDrain(cache.stream("k", "use", upstream, isDone)))
      yield* TestClock.adjust(0)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual((yield* cache.stats).entries, 0)
    }).pipe(withCache({}))
  )

  it.effect("refresh and bypass for streams; stale chunks after expiry; unary and stream entries apart", () =>
    Effect.gen(function* () {
      const cache = yield* ResponseCache
      const upstream = countingStream(Stream.fromIterable(chunks))
      yield* Stream.runDrain(cache.stream("k", "use", upstream.stream, isDone))
      assert.strictEqual((yield* cache.lookupStream("k", "refresh", upstream.stream, isDone)).lookup, "refresh")
      const bypass = yield* cache.lookupStream("k", "bypass", upstream.stream, isDone)
      assert.strictEqual(bypass.lookup, "bypass")
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(bypass.stream)), chunks)
      assert.strictEqual(upstream.runs(), 2)
      assert.isTrue(Option.isNone(yield* cache.stale("k")))
      assert.strictEqual((yield* cache.get("k", "use", Effect.succeed("unary"))).lookup, "miss")
      yield* TestClock.adjust("2 minutes")
      assert.deepStrictEqual(yield* cache.staleStream<Chunk>("k"), Option.some(chunks))
      assert.strictEqual((yield* cache.lookupStream("k", "use", upstream.stream, isDone)).lookup, "miss")
      const stats = yield* cache.stats
      assert.deepStrictEqual(
        [stats.hits, stats.misses, stats.refreshes, stats.bypasses, stats.staleServed, stats.entries],
        [0, 3, 1, 1, 1, 2]
      )
    }).pipe(withCache({ ttl: "1 minute" }))
  )
})
