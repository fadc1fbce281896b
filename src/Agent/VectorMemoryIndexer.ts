/**
 * VectorMemory's indexes, kept in step with the table: loaded from SQLite at start, and their HNSW graphs built in
 * the background.
 *
 * Choices:
 * - At start every pinned namespace's rows are read into its VectorIndex (exact rows, ~1.5 s at 100k × 768); the
 *   service is usable then, searches scanning exactly. A namespace of `approximateFrom` rows or more then gets its
 *   graph built by one background fiber, as does a namespace that grows past it later.
 * - Rebuilt, not loaded from a saved graph: the table stays the one truth (no file that can fall behind a
 *   crash or a restore), at the price of the build's CPU after each start (~0.35 ms a row at 768 dimensions).
 * - The builder adds `stepRows` rows per step on every core (usearch's threads), then yields to the event loop
 *   (setImmediate, not the Clock: a step is real work, and tests run it under TestClock), so one step blocks the
 *   loop for tens of milliseconds at most. Writes and deletes run between steps; VectorIndex keeps its graph in
 *   step with them.
 */
import { Effect, Queue, Stream } from "effect"
import { availableParallelism } from "node:os"
import { decodeVector, type MemoriesRepo, type Pin } from "../Store/MemoriesRepo.js"
import { type Options as IndexOptions, VectorIndex } from "./VectorIndex.js"
import type { Space } from "./VectorMemoryCleanup.js"

/** Rows per build step: ~25-50 ms of one step's CPU on this 2-core machine at 768 dimensions. */
export const stepRows = 128

/** A namespace's index loaded from the table (`size` rows expected, so no regrowth). */
export const load = (repo: MemoriesRepo, pin: Pin, options: IndexOptions, size = 0) =>
  Effect.gen(function* () {
    const index = new VectorIndex(pin.dim, size, options)
    yield* Stream.runForEach(repo.vectors(pin.namespace), (row) =>
      Effect.sync(() => index.add(row.id, row.agent, row.created_at, decodeVector(row.vector)))
    )
    return { pin, index } satisfies Space
  })

/** Every pinned namespace's index, loaded from the table (sized from the counts, so no regrowth). */
export const rebuild = (repo: MemoriesRepo, options: IndexOptions) =>
  Effect.gen(function* () {
    const sizes = new Map<string, number>()
    for (const { namespace, n } of yield* repo.counts) sizes.set(namespace, (sizes.get(namespace) ?? 0) + n)
    const spaces = new Map<string, Space>()
    for (const pin of yield* repo.pins)
      spaces.set(pin.namespace, yield* load(repo, pin, options, sizes.get(pin.namespace)))
    return spaces
  }).pipe(Effect.withSpan("VectorMemory.rebuild"))

/** One turn of the event loop. */
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

const building = (spaces: ReadonlyMap<string, Space>) => [...spaces.values()].filter((s) => s.index.mode === "building")

/**
 * Starts the background builder (scoped); returns `wake`, to call after a write that may have started a graph,
 * and `settled`, which waits until no graph is being built.
 */
export const builder = (spaces: ReadonlyMap<string, Space>) =>
  Effect.gen(function* () {
    const signal = yield* Queue.sliding<void>(1)
    const threads = availableParallelism()
    const drain: Effect.Effect<void> = Effect.suspend(() => {
      const pending = building(spaces)
      if (pending.length === 0) return Effect.void
      for (const space of pending) space.index.buildStep(stepRows, threads)
      return Effect.zipRight(nextTurn, drain)
    })
    yield* Queue.take(signal).pipe(
      Effect.zipRight(drain.pipe(Effect.withSpan("VectorMemory.buildIndexes"))),
      Effect.forever,
      Effect.forkScoped
    )
    yield* Queue.offer(signal, undefined)
    const settled: Effect.Effect<void> = Effect.suspend(() =>
      building(spaces).length === 0 ? Effect.void : Effect.zipRight(nextTurn, settled)
    )
    return {
      wake: (space: Space) => (space.index.mode === "building" ? Queue.offer(signal, undefined) : Effect.void),
      settled
    } as const
  })
