/**
 * VectorMemory's cleanup policy, so that memory never grows without bound (the table and the indexes shrink
 * together):
 *
 * - lifetime: a memory expires `ttl × (1 + importance)` after its last use (write, merge or recall): an
 *   importance-1 memory lives twice as long as an importance-0 one. The instant is stored as `expires_at`.
 * - capacity per (agent, namespace): what overflows it goes closest-to-expiry first, i.e. least recently used,
 *   weighted by importance (`lastUsedAt + ttl × importance` smallest first); a write never evicts its own memory.
 * - the sweep: deletes what has expired, then evicts every (agent, namespace) down to its capacity (writes keep
 *   the capacity themselves; this catches a lowered capacity after a restart).
 */
import { Clock, Effect } from "effect"
import type { Memory, MemoriesRepo, Pin, Removal } from "../Store/MemoriesRepo.js"
import type { VectorIndex } from "./VectorIndex.js"

/** The namespace's counters (MemoriesChanges.ts) an index reflects: every insert up to `version`, every delete
 * while `removed` had this value. */
export interface Seen {
  version: number
  removed: number
}

/** One namespace: its pin, its index, and the counters the index reflects. */
export interface Space {
  readonly pin: Pin
  readonly index: VectorIndex
  readonly seen: Seen
}

export interface SweepResult {
  readonly expired: number
  readonly evicted: number
}

/** When a memory last used at `lastUsedAt` expires: the eviction and expiry key. */
export const expiresAt = (lastUsedAt: number, importance: number, ttlMs: number): number =>
  Math.round(lastUsedAt + ttlMs * (1 + importance))

/** Importance in 0..1 (anything else is clamped; NaN is 0). */
export const clamp = (importance: number) => Math.min(1, Math.max(0, Number.isFinite(importance) ? importance : 0))

/** The memory after one more use at `now` (a recall, or a merge that may raise its importance). */
export const used = (memory: Memory, now: number, ttlMs: number, importance = memory.importance): Memory => ({
  ...memory,
  importance,
  lastUsedAt: now,
  uses: memory.uses + 1,
  expiresAt: expiresAt(now, importance, ttlMs)
})

/**
 * Drops deleted rows from their namespace's index (after the delete's commit), and counts the delete as seen when
 * no other instance deleted in the namespace since the index last looked; returns how many rows were deleted.
 */
export const dropped = (spaces: ReadonlyMap<string, Space>, removals: ReadonlyArray<Removal>) => {
  let n = 0
  for (const { ids, namespace, removed } of removals) {
    const space = spaces.get(namespace)
    n += ids.length
    if (space === undefined) continue
    for (const id of ids) space.index.remove(id)
    if (removed === space.seen.removed + ids.length) space.seen.removed = removed
  }
  return n
}

/**
 * Deletes from the table what overflows the capacity of (agent, namespace) once `adding` more are in, closest to
 * expiry first, sparing `except`; returns what was deleted, for the caller to drop from the index after its commit.
 */
export const overflow =
  (repo: MemoriesRepo, capacity: number) => (space: Space, agent: string, except: string, adding: number) => {
    const excess = space.index.count(agent) + adding - capacity
    if (excess <= 0) return Effect.succeed<ReadonlyArray<Removal>>([])
    return Effect.flatMap(repo.evictionOrder(space.pin.namespace, agent, except, excess), repo.remove)
  }

/** Expired memories out, then every (agent, namespace) down to its capacity. */
export const sweep = (repo: MemoriesRepo, spaces: ReadonlyMap<string, Space>, capacity: number) =>
  Effect.gen(function* () {
    const expired = yield* repo.expired(yield* Clock.currentTimeMillis)
    dropped(spaces, yield* repo.remove(expired.map((r) => r.id)))
    // an expired row another instance deleted first is gone from the table as well
    for (const { id, namespace } of expired) spaces.get(namespace)?.index.remove(id)
    let evicted = 0
    for (const space of spaces.values()) {
      for (const agent of space.index.agentsPresent()) {
        evicted += dropped(spaces, yield* overflow(repo, capacity)(space, agent, "", 0))
      }
    }
    return { expired: expired.length, evicted } satisfies SweepResult
  })
