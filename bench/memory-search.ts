/**
 * Memory-search bench: VectorMemory at 10k and 100k memories of dimension 768 (random unit vectors, 100 agents,
 * one namespace, file-backed SQLite in a temporary directory), 200 queries each, p50/p99 per query.
 *
 * Rows are bulk-inserted through MemoriesRepo (chunks of 5000 per transaction), not through `rememberVector`:
 * every `rememberVector` scans the namespace for a near-duplicate (exact cosine over all rows), so 100k of them
 * cost O(n²) scans; their per-write latency at the full size is measured separately below. The service is then
 * started, which rebuilds its index from the table (timed), and queried:
 * - recall: whole namespace, k = 10 (index scan + fetching the 10 rows + marking them used, in SQLite);
 * - recall by agent: the same with an agent filter (1 % of the rows scored);
 * - index only: `VectorIndex.search` alone over the same number of rows (the scan without SQLite).
 *
 *   node --import tsx bench/memory-search.ts            (SLUICE_BENCH_MEMORIES=10000,100000 to choose sizes)
 */
import { Context, Effect, Layer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { VectorIndex } from "../src/Agent/VectorIndex.js"
import { VectorMemory } from "../src/Agent/VectorMemory.js"
import { Embedder } from "../src/Agent/VectorMemoryEmbedder.js"
import { MemoriesRepo } from "../src/Store/MemoriesRepo.js"
import * as Store from "../src/Store/Store.js"
import * as Report from "./support/Report.js"
import { fmt, percentile } from "./support/Stats.js"

const sizes = (process.env.SLUICE_BENCH_MEMORIES ?? "10000,100000").split(",").map(Number)
const dim = 768
const queries = 200
const writes = 200
const k = 10
const agents = 100
const namespace = "bench"
const model = "nomic-embed-text:latest"

/** Deterministic random unit vectors (mulberry32). */
const generator = (seed: number) => {
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return (): Array<number> => {
    const v = new Array<number>(dim)
    let sq = 0
    for (let i = 0; i < dim; i++) sq += (v[i] = next() * 2 - 1) ** 2
    const norm = Math.sqrt(sq)
    for (let i = 0; i < dim; i++) v[i]! /= norm
    return v
  }
}

interface Latency {
  readonly p50: number
  readonly p99: number
  readonly mean: number
}

const latency = (samples: ReadonlyArray<number>): Latency => {
  const sorted = Float64Array.from(samples).sort()
  return {
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length
  }
}

/** Runs `f` `times` times, one after the other, and returns the latencies (ms). */
const timed = <E, R>(times: number, f: (i: number) => Effect.Effect<unknown, E, R>) =>
  Effect.forEach(
    Array.from({ length: times }, (_, i) => i),
    (i) =>
      Effect.suspend(() => {
        const start = performance.now()
        return Effect.map(f(i), () => performance.now() - start)
      })
  ).pipe(Effect.map(latency))

const bulkInsert = (n: number) =>
  Effect.gen(function* () {
    const repo = yield* MemoriesRepo
    const vector = generator(1)
    const now = Date.now()
    yield* repo.pin({ namespace, model, dim }, now)
    for (let from = 0; from < n; from += 5000) {
      const rows = Array.from({ length: Math.min(5000, n - from) }, (_, j) => {
        const i = from + j
        const base = { id: `m${i}`, agent: `agent${i % agents}`, namespace, text: `memory ${i}`, importance: 0.5 }
        return {
          ...base,
          createdAt: now,
          lastUsedAt: now,
          uses: 1,
          expiresAt: now + 86_400_000,
          model,
          vector: vector()
        }
      })
      yield* repo.transaction(repo.insertMany(rows))
    }
  })

const noEmbedder = Layer.succeed(Embedder, { embed: () => Effect.dieMessage("the bench stores vectors only") })

const runSize = (n: number) =>
  Effect.gen(function* () {
    const insertStart = performance.now()
    yield* bulkInsert(n)
    const insertMs = performance.now() - insertStart
    const startAt = performance.now()
    const memory = yield* Effect.map(Layer.build(VectorMemory.Default({ capacity: 1000 })), Context.get(VectorMemory))
    const rebuildMs = performance.now() - startAt
    const query = generator(2)
    const recall = yield* timed(queries, () => memory.recall({ namespace, query: query(), k }))
    const byAgent = yield* timed(queries, (i) => memory.recall({ namespace, query: query(), k, agent: `agent${i}` }))
    const fresh = generator(3)
    const write = yield* timed(writes, (i) =>
      memory.rememberVector({ agent: `agent${i % agents}`, namespace, text: `new ${i}`, model, vector: fresh() })
    )
    return { memories: n, insertMs, rebuildMs, recall, byAgent, write }
  }).pipe(Effect.scoped, Effect.provide(MemoriesRepo.Default.pipe(Layer.provideMerge(databaseIn(n)))))

/** A fresh file-backed database per size, deleted afterwards. */
const databaseIn = (n: number) =>
  Layer.unwrapScoped(
    Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), `sluice-memory-${n}-`))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    ).pipe(Effect.map((dir) => Layer.merge(Store.layerSqlite({ dataDir: dir }), noEmbedder)))
  )

/** The scan alone: a VectorIndex of n rows, 200 searches, wall time and this process's CPU time per search. */
const indexOnly = (n: number) => {
  const index = new VectorIndex(dim, n)
  const vector = generator(1)
  for (let i = 0; i < n; i++) index.add(`m${i}`, `agent${i % agents}`, 0, vector())
  const query = generator(2)
  const wall: Array<number> = []
  const cpu: Array<number> = []
  for (let i = 0; i < queries; i++) {
    const q = query()
    const start = performance.now()
    const before = process.cpuUsage()
    index.search(q, k)
    const used = process.cpuUsage(before)
    wall.push(performance.now() - start)
    cpu.push((used.user + used.system) / 1000)
  }
  return { wall: latency(wall), cpu: latency(cpu) }
}

const results = []
for (const n of sizes) {
  const measured = await Effect.runPromise(runSize(n))
  results.push({ ...measured, indexOnly: indexOnly(n) })
  console.error(`memory-search: ${n} done`)
}

const ms = (l: Latency) => [fmt.ms(l.p50), fmt.ms(l.p99)]
Report.write({
  scenario: "memory-search",
  title: "VectorMemory recall at 10k and 100k memories (dimension 768)",
  setup: [
    `${queries} sequential queries per row, k = ${k}, random unit vectors, ${agents} agents in one namespace.`,
    "Exact cosine top-k over contiguous float32 rows (VectorIndex), no approximate index.",
    "Rows bulk-inserted through MemoriesRepo (5000 per transaction): rememberVector scans for near-duplicates " +
      "on every write, so 100k of them would be O(n²); its per-write latency is the last columns.",
    "File-backed SQLite (WAL, synchronous NORMAL) in a temporary directory; the index rebuilt from it at start."
  ],
  tables: [
    {
      headers: [
        "memories",
        "bulk insert",
        "rebuild at start",
        "recall p50",
        "recall p99",
        "recall by agent p50",
        "recall by agent p99",
        "index only p50",
        "index only p99",
        "index only CPU p50",
        "rememberVector p50",
        "rememberVector p99"
      ],
      rows: results.map((r) => [
        r.memories.toLocaleString("en-US"),
        `${fmt.rps(r.memories / (r.insertMs / 1000))} rows/s`,
        fmt.ms(r.rebuildMs),
        ...ms(r.recall),
        ...ms(r.byAgent),
        ...ms(r.indexOnly.wall),
        fmt.ms(r.indexOnly.cpu.p50),
        ...ms(r.write)
      ])
    }
  ],
  notes: [
    "recall = index scan + SELECT of the k rows + UPDATE of their usage in one transaction.",
    "index only CPU = CPU time this process used during one search (process.cpuUsage): less sensitive than wall " +
      "time to other processes on a shared machine.",
    "rememberVector = a top-1 scan of the same agent's rows for a near-duplicate + INSERT (+ eviction check)."
  ],
  data: results
})
