/**
 * Long-term memory for agents: texts with their embeddings, recalled by cosine similarity.
 *
 * Choices:
 * - A namespace is pinned to (embedding model, dimension) by its first write (table `memory_namespaces`); a write
 *   or a query in another space fails with DimensionMismatch naming both. Model names compare as Ollama does.
 * - SQLite (MemoriesRepo) is the truth; each namespace also has an in-memory VectorIndex (exact cosine top-k
 *   below `approximateFrom` memories, an HNSW graph from there on), loaded from the table when the service starts
 *   (its graph built in the background, VectorMemoryIndexer.ts) and updated after every committed write or delete.
 * - Embeddings come from the Embedder port; `layerLlm` sends them through the engine (batching, cache, retries).
 * - Writes, deletes, sweeps and the usage marks of a recall are serialised by one permit, so the duplicate check,
 *   the insert and the eviction it causes are atomic; searching the index needs no permit (it is synchronous).
 * - A recall's usage marks (uses, last use, expiry) are written behind, every `usageFlushEvery` in a few
 *   transactions (VectorMemoryUsage.ts): written in the recall, they made its p99 the WAL checkpoints' fsyncs.
 * - Cleanup (VectorMemoryCleanup.ts): a lifetime of `ttl × (1 + importance)` after the last use, a capacity per
 *   (agent, namespace) enforced on write (closest to expiry evicted first), and a scoped sweep every `sweepEvery`.
 * - Near-duplicates: a write whose cosine with one of the same agent's memories in the namespace is at least
 *   `mergeThreshold` updates that memory instead (uses + 1, last use now, importance = max of both; its text and
 *   metadata stay).
 * - Times come from `Clock`, so TestClock drives expiry in tests.
 * - Several instances on one database: a namespace another instance pinned after this one loaded its indexes is
 *   read from the table the first time this one writes or recalls in it (an agent taken over from a dead
 *   instance keeps its memories); a namespace already loaded is brought up to the table before each recall and
 *   write (VectorMemoryIndexer.ts: the other instances' inserts added, their deletes dropped). A memory deleted by
 *   another instance between that and its use is skipped: a merge into it becomes an insert, a recall leaves it out.
 */
import { Clock, Duration, Effect, Option, Schedule } from "effect"
import { randomUUID } from "node:crypto"
import { normalizeName } from "../Domain/ModelName.js"
import { type Memory, MemoriesRepo, type Metadata, type Pin } from "../Store/MemoriesRepo.js"
import { indexDefaults, type Mode, VectorIndex } from "./VectorIndex.js"
import {
  clamp,
  expiresAt,
  dropped,
  overflow as overflowOf,
  type Space,
  sweep as sweepOf,
  type SweepResult,
  used
} from "./VectorMemoryCleanup.js"
import { Embedder } from "./VectorMemoryEmbedder.js"
import * as Usage from "./VectorMemoryUsage.js"
import { DimensionMismatch } from "./VectorMemoryError.js"
import { builder, catchUp, fresh, inserted, load, rebuild } from "./VectorMemoryIndexer.js"

export type { Memory, Metadata, SweepResult }

export interface Options {
  /** Embedding model for `remember` and text queries of new namespaces (default "nomic-embed-text"). */
  readonly model?: string
  /** Memories kept per (agent, namespace) (default 1000). */
  readonly capacity?: number
  /** Lifetime after the last use, multiplied by 1 + importance (default 30 days). */
  readonly ttl?: Duration.DurationInput
  /** Cosine at or above which a write merges into an existing memory (default 0.95). */
  readonly mergeThreshold?: number
  /** Interval of the background sweep (default 1 minute). */
  readonly sweepEvery?: Duration.DurationInput
  /** Memories in a namespace from which recall goes through an HNSW graph (default 5000; below, exact scans). */
  readonly approximateFrom?: number
  /** Interval at which recalls' usage marks are written (default 1 second). */
  readonly usageFlushEvery?: Duration.DurationInput
}

export const defaults = {
  model: "nomic-embed-text",
  capacity: 1000,
  ttl: "30 days",
  mergeThreshold: 0.95,
  sweepEvery: "1 minute",
  usageFlushEvery: "1 second",
  approximateFrom: indexDefaults.approximateFrom,
  importance: 0.5
} as const

export interface RememberInput {
  readonly agent: string
  readonly namespace: string
  readonly text: string
  /** 0..1 (default 0.5); clamped. */
  readonly importance?: number
  readonly metadata?: Metadata
  /** Overrides the configured embedding model. */
  readonly model?: string
}

export interface RememberVectorInput extends RememberInput {
  readonly vector: ReadonlyArray<number>
  /** The model that produced the vector. */
  readonly model: string
}

export interface RecallQuery {
  readonly namespace: string
  /** A text (embedded with the namespace's model) or a vector of the namespace's dimension. */
  readonly query: string | ReadonlyArray<number>
  readonly k: number
  /** Only this agent's memories (default: every agent's). */
  readonly agent?: string
  /** Cosine at or above (-1..1). */
  readonly minScore?: number
  /** Created at or after (epoch ms). */
  readonly since?: number
  /** Created at or before (epoch ms). */
  readonly until?: number
  /** The model the query vector comes from (default: the pinned one). */
  readonly model?: string
}

export interface Recalled {
  readonly memory: Memory
  readonly score: number
}

export interface NamespaceStats extends Pin {
  readonly memories: number
  readonly agents: Readonly<Record<string, number>>
  /** How recall is answered: exact scan, exact while the graph is built, or through the graph. */
  readonly index: Mode
}

export class VectorMemory extends Effect.Service<VectorMemory>()("sluice/VectorMemory", {
  scoped: (options: Options = {}) =>
    Effect.gen(function* () {
      const repo = yield* MemoriesRepo
      const embedder = yield* Embedder
      const model = options.model ?? defaults.model
      const capacity = Math.max(1, Math.floor(options.capacity ?? defaults.capacity))
      const ttl = Duration.toMillis(options.ttl ?? defaults.ttl)
      const mergeThreshold = options.mergeThreshold ?? defaults.mergeThreshold
      const lock = (yield* Effect.makeSemaphore(1)).withPermits(1)
      const indexOptions = { approximateFrom: options.approximateFrom ?? defaults.approximateFrom }
      const spaces = yield* rebuild(repo, indexOptions)
      const indexes = yield* builder(spaces)
      const usage = yield* Usage.make(repo, lock, options.usageFlushEvery ?? defaults.usageFlushEvery)

      const mismatch = (pin: Pin, actualModel: string, actual: number) =>
        normalizeName(actualModel) === pin.model && actual === pin.dim
          ? Effect.void
          : Effect.fail(
              new DimensionMismatch({
                namespace: pin.namespace,
                expected: pin.dim,
                actual,
                expectedModel: pin.model,
                actualModel: normalizeName(actualModel)
              })
            )

      /** The space of a namespace pinned in the table but not known here (another instance pinned it), loaded. */
      const adopt = (namespace: string) =>
        Effect.gen(function* () {
          const known = spaces.get(namespace)
          const pin = known === undefined ? (yield* repo.pins).find((p) => p.namespace === namespace) : undefined
          if (pin === undefined) return known
          const space = yield* load(repo, pin, indexOptions)
          spaces.set(namespace, space)
          yield* indexes.wake(space)
          return space
        })

      /** The namespace's space, pinned now on a first write; fails when the vector is of another space. */
      const spaceFor = (namespace: string, actualModel: string, dim: number, now: number) =>
        Effect.gen(function* () {
          const existing = yield* adopt(namespace)
          if (existing !== undefined) {
            yield* Effect.zipRight(catchUp(repo, existing), indexes.wake(existing))
            return yield* Effect.as(mismatch(existing.pin, actualModel, dim), existing)
          }
          const space: Space = {
            pin: { namespace, model: normalizeName(actualModel), dim },
            index: new VectorIndex(dim, 0, indexOptions),
            seen: { version: 0, removed: 0 }
          }
          yield* repo.pin(space.pin, now)
          spaces.set(namespace, space)
          return space
        })

      const overflow = overflowOf(repo, capacity)

      /** The memory merged into; none when another instance deleted it meanwhile (dropped from the index). */
      const merge = (space: Space, id: string, importance: number | undefined, now: number) =>
        Effect.gen(function* () {
          const [current] = yield* repo.byIds([id])
          if (current === undefined) {
            space.index.remove(id)
            return Option.none<Memory>()
          }
          const latest = usage.latest(current)
          const merged = used(latest, now, ttl, Math.max(latest.importance, clamp(importance ?? 0)))
          yield* repo.updateUsage(merged)
          usage.written(id)
          return Option.some(merged)
        })

      const insert = (space: Space, input: RememberVectorInput, now: number) =>
        Effect.gen(function* () {
          const importance = clamp(input.importance ?? defaults.importance)
          const memory: Memory = {
            id: randomUUID(),
            agent: input.agent,
            namespace: input.namespace,
            text: input.text,
            importance,
            createdAt: now,
            lastUsedAt: now,
            uses: 1,
            expiresAt: expiresAt(now, importance, ttl),
            ...(input.metadata === undefined ? {} : { metadata: input.metadata })
          }
          const write = repo.insert({ ...memory, model: space.pin.model, vector: input.vector })
          yield* usage.flushAgent(input.namespace, input.agent)
          const [version, evicted] = yield* repo.transaction(
            Effect.zip(write, overflow(space, input.agent, memory.id, 1))
          )
          space.index.add(memory.id, memory.agent, now, input.vector)
          inserted(space, version)
          dropped(spaces, evicted)
          yield* indexes.wake(space)
          return memory
        })

      const write = (input: RememberVectorInput) =>
        Effect.gen(function* () {
          if (input.vector.length === 0) return yield* Effect.dieMessage("VectorMemory: an empty vector")
          const now = yield* Clock.currentTimeMillis
          const space = yield* spaceFor(input.namespace, input.model, input.vector.length, now)
          const filter = { agent: input.agent, minScore: mergeThreshold }
          const [near] = space.index.search(input.vector, 1, filter)
          const merged = near === undefined ? Option.none() : yield* merge(space, near.id, input.importance, now)
          return Option.isSome(merged) ? merged.value : yield* insert(space, input, now)
        }).pipe(lock)

      const queryVector = (space: Space, q: RecallQuery) =>
        Effect.gen(function* () {
          const queryModel = q.model ?? space.pin.model
          const vector =
            typeof q.query === "string" ? ((yield* embedder.embed(queryModel, [q.query]))[0] ?? []) : q.query
          yield* mismatch(space.pin, queryModel, vector.length)
          return vector
        })

      /** Marks the hits used and returns them with their rows (a memory deleted meanwhile is left out and dropped). */
      const touch = (space: Space, hits: ReadonlyArray<{ id: string; score: number }>) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const rows = new Map((yield* repo.byIds(hits.map((h) => h.id))).map((m) => [m.id, m]))
          return hits.flatMap(({ id, score }) => {
            const row = rows.get(id)
            if (row === undefined) return (space.index.remove(id), [])
            const memory = used(usage.latest(row), now, ttl)
            usage.mark(memory)
            return [{ memory, score }]
          })
        }).pipe(lock)

      const sweep = Effect.zipRight(usage.flush(), sweepOf(repo, spaces, capacity)).pipe(
        lock,
        Effect.withSpan("VectorMemory.sweep")
      )

      yield* sweep.pipe(
        Effect.catchAll((error) => Effect.logWarning("vector memory sweep failed", error)),
        Effect.repeat(Schedule.spaced(options.sweepEvery ?? defaults.sweepEvery)),
        Effect.forkScoped
      )

      return {
        /** Embeds the text (through the Embedder) and stores it, or merges it into a near-duplicate. */
        remember: Effect.fn("VectorMemory.remember")(function* (input: RememberInput) {
          const embedModel = input.model ?? model
          const [vector] = yield* embedder.embed(embedModel, [input.text])
          return yield* write({ ...input, model: embedModel, vector: vector ?? [] })
        }),
        /** Stores a vector computed elsewhere (bulk loads, tests), or merges it into a near-duplicate. */
        rememberVector: Effect.fn("VectorMemory.rememberVector")((input: RememberVectorInput) => write(input)),
        /** The k most similar memories passing the filters, best first; they count as used. */
        recall: Effect.fn("VectorMemory.recall")(function* (q: RecallQuery) {
          const known = spaces.get(q.namespace)
          const space = known ?? (yield* lock(adopt(q.namespace)))
          if (space === undefined) return [] as ReadonlyArray<Recalled>
          const vector = yield* queryVector(space, q)
          if (known !== undefined) yield* Effect.flatMap(fresh(repo, space, lock), indexes.wake)
          const { agent, minScore, since, until } = q
          const hits = space.index.search(vector, q.k, { agent, minScore, since, until })
          return hits.length === 0 ? [] : yield* touch(space, hits)
        }),
        /** Deletes one memory; false when there was none. */
        forget: Effect.fn("VectorMemory.forget")(function* (id: string) {
          return dropped(spaces, yield* repo.remove([id])) > 0
        }, lock),
        /** Runs the cleanup now (what the background sweep runs). */
        sweep,
        /** Waits until no namespace's graph is being built (after a start or a namespace's growth). */
        indexed: indexes.settled,
        stats: Effect.sync((): ReadonlyArray<NamespaceStats> =>
          [...spaces.values()].map(({ index, pin }) => ({
            ...pin,
            memories: index.length,
            index: index.mode,
            agents: Object.fromEntries(index.agentsPresent().map((agent) => [agent, index.count(agent)]))
          }))
        )
      } as const
    }),
  dependencies: [MemoriesRepo.Default]
}) {}
