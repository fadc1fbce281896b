/**
 * The usage marks of recalls (uses + 1, last use, expiry), written behind: a recall records them here and returns;
 * a background flush writes them in a few transactions.
 *
 * Why: writing them in the recall cost one transaction of k row updates per recall (each rewriting the row's page,
 * vector included, and both indexes on `expires_at`), so ~30 WAL pages a recall on SQLite: every ~30 recalls one
 * of them ran the WAL's auto-checkpoint and its fsyncs, ~20 ms of I/O wait on this machine (the recall p99 at
 * 100k memories, bench/memory-search.ts). Batched, a memory recalled again before the flush is written once,
 * the index pages are shared, and the cost leaves the recall.
 *
 * Choices:
 * - A mark is the memory's whole usage state after the use; a later mark of the same memory replaces it. Recall
 *   and merge read a row through `latest`, so a use counts on top of the unwritten ones.
 * - What reads usage from the table flushes first: the sweep (everything), a write's eviction check (that agent's
 *   marks in that namespace). Another instance on the same database sees a mark at most one flush period late:
 *   its eviction or sweep may take a memory this one used within that period (the mark then updates no row).
 * - Flushed one period after the first unwritten mark (no timer runs while nothing is pending), under the caller's
 *   permit, in transactions of `chunkRows` with a turn of the event loop between two, so a large backlog never
 *   blocks the loop for long; a mark leaves the buffer only once written (and unchanged since), so a failed flush
 *   is retried at the next one. The scope's end flushes what is left (a failure there is logged).
 */
import { type Duration, Effect, Queue } from "effect"
import type { Memory, MemoriesRepo } from "../Store/MemoriesRepo.js"

/** Rows per flush transaction: ~70 µs a row on SQLite at 100k memories (10 in 0.7 ms), so ~7 ms a chunk. */
export const chunkRows = 100

/** One turn of the event loop. */
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** The buffer, its background writer (scoped) flushing `every` after a mark, under `lock`. */
export const make = (
  repo: MemoriesRepo,
  lock: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
  every: Duration.DurationInput
) =>
  Effect.gen(function* () {
    const pending = new Map<string, Memory>()
    const signal = yield* Queue.sliding<void>(1)

    const write = (marks: ReadonlyArray<Memory>) =>
      Effect.gen(function* () {
        yield* repo.transaction(Effect.forEach(marks, repo.updateUsage, { discard: true }))
        for (const mark of marks) if (pending.get(mark.id) === mark) pending.delete(mark.id)
      })

    /** Writes the marks passing `which` (all by default), `chunkRows` per transaction. */
    const flush = (which: (mark: Memory) => boolean = () => true) =>
      Effect.gen(function* () {
        const marks = [...pending.values()].filter(which)
        for (let from = 0; from < marks.length; from += chunkRows) {
          if (from > 0) yield* nextTurn
          yield* write(marks.slice(from, from + chunkRows))
        }
      })

    const flushNow = lock(flush()).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("vector memory usage flush failed", cause))
    )
    yield* Queue.take(signal).pipe(
      Effect.zipRight(Effect.sleep(every)),
      Effect.zipRight(flushNow),
      Effect.forever,
      Effect.forkScoped
    )
    yield* Effect.addFinalizer(() => flushNow)

    return {
      /** The memory with its unwritten usage, if any (newer than the row read from the table). */
      latest: (row: Memory): Memory => pending.get(row.id) ?? row,
      /** Records a use (the memory's usage state after it), written at the next flush. */
      mark: (memory: Memory): void => {
        pending.set(memory.id, memory)
        signal.unsafeOffer(undefined)
      },
      /** Drops a mark that was written another way (a merge writes its row itself). */
      written: (id: string): void => {
        pending.delete(id)
      },
      flush,
      /** The marks of one agent in one namespace (before its eviction order is read). */
      flushAgent: (namespace: string, agent: string) =>
        pending.size === 0 ? Effect.void : flush((m) => m.namespace === namespace && m.agent === agent),
      get size(): number {
        return pending.size
      }
    } as const
  })
