/**
 * VectorMemory's indexes, kept in step with the table: loaded from the database at start, brought up to date with
 * other instances' writes before they are searched, and their HNSW graphs built in the background.
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
 * - Other instances' writes (several instances on one database): a loaded index remembers the namespace's counters
 *   it reflects (`Space.seen`, Store/MemoriesChanges.ts). Before each recall and write, `fresh` reads them (one
 *   primary-key read); when they moved, `catchUp` adds the rows inserted since (an index range read of just those
 *   rows) and, when rows were deleted by someone else, lists the namespace's ids to drop the ones gone. Every
 *   search, not every N ms: the read costs less than the recall's own reads of its hits, and a search then never
 *   misses a memory committed before it started. This instance's own writes move `seen` themselves when no one else
 *   wrote in between, so they cost no catch-up.
 */
import { Effect, Option, Queue, Stream } from "effect"
import { availableParallelism } from "node:os"
import type { Versions } from "../Store/MemoriesChanges.js"
import { decodeVector, type MemoriesRepo, type Pin } from "../Store/MemoriesRepo.js"
import { type Options as IndexOptions, VectorIndex } from "./VectorIndex.js"
import type { Space } from "./VectorMemoryCleanup.js"

/** Rows per build step: ~25-50 ms of one step's CPU on this 2-core machine at 768 dimensions. */
export const stepRows = 128

/** A namespace's index loaded from the table (`size` rows expected, so no regrowth), its counters read first. */
export const load = (repo: MemoriesRepo, pin: Pin, options: IndexOptions, size = 0) =>
  Effect.gen(function* () {
    const seen = Option.getOrElse(yield* repo.versions(pin.namespace), () => ({ version: 0, removed: 0 }))
    const index = new VectorIndex(pin.dim, size, options)
    yield* Stream.runForEach(repo.vectors(pin.namespace), (row) =>
      Effect.sync(() => index.add(row.id, row.agent, row.created_at, decodeVector(row.vector)))
    )
    return { pin, index, seen: { ...seen } } satisfies Space
  })

/** Whether the namespace's counters moved since the index last looked (none: it is not in the table). */
const moved = (space: Space, now: Option.Option<Versions>) =>
  Option.isSome(now) && (now.value.version > space.seen.version || now.value.removed !== space.seen.removed)

/**
 * Brings the index up to the table (under VectorMemory's permit): the rows inserted since the version it reflects,
 * and, if rows were deleted by another instance, the removal of those gone.
 */
export const catchUp = (repo: MemoriesRepo, space: Space) =>
  Effect.gen(function* () {
    const now = yield* repo.versions(space.pin.namespace)
    if (!moved(space, now)) return
    const { removed, version } = Option.getOrThrow(now)
    const { index, pin, seen } = space
    if (version > seen.version) {
      yield* Stream.runForEach(repo.added(pin.namespace, seen.version, version), (row) =>
        Effect.sync(() => index.has(row.id) || index.add(row.id, row.agent, row.created_at, decodeVector(row.vector)))
      )
      seen.version = version
    }
    if (removed !== seen.removed) {
      const present = yield* repo.ids(pin.namespace)
      for (const id of index.allIds()) if (!present.has(id)) index.remove(id)
      seen.removed = removed
    }
  }).pipe(Effect.withSpan("VectorMemory.catchUp"))

/** The space brought up to the table: a read of its counters, and `catchUp` under `lock` only when they moved. */
export const fresh = (
  repo: MemoriesRepo,
  space: Space,
  lock: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
) =>
  Effect.flatMap(repo.versions(space.pin.namespace), (now) =>
    moved(space, now) ? Effect.as(lock(catchUp(repo, space)), space) : Effect.succeed(space)
  )

/** Counts this instance's own insert (committed as `version`) as seen when no one else inserted in between. */
export const inserted = (space: Space, version: number) => {
  if (version === space.seen.version + 1) space.seen.version = version
}

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
