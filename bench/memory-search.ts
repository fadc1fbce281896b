/**
 * Memory-search bench: VectorMemory at 10k and 100k memories of dimension 768 (100 agents, one namespace,
 * file-backed SQLite in a temporary directory), 200 queries each, p50/p99 per query, recall@10 against the exact scan.
 *
 * Vectors look like embeddings, not like noise: each is a random point of a 32-dimensional latent space mapped
 * into 768 dimensions by one fixed random matrix, plus 10 % noise energy (top-1 cosine ~0.55, 10th ~0.5). Uniform
 * random vectors in 768 dimensions have no neighbour structure (every cosine is 0 ± 0.04), and no approximate index
 * finds their top 10 (usearch and hnswlib reached recall@10 0.2-0.5 on them here); text embeddings lie near a
 * low-dimensional surface, which is what HNSW relies on.
 *
 * Rows are bulk-inserted through MemoriesRepo (chunks of 5000 per transaction), not through `rememberVector`. The
 * service is then started, which loads its index from the table (timed), and its HNSW graph is built in the
 * background (timed until `indexed`); then:
 * - recall: whole namespace, k = 10 (graph search + exact re-scoring + fetching the 10 rows + marking them used,
 *   the marks written behind by VectorMemory once a second);
 * - recall by agent: the same with an agent filter (1 % of the rows: an exact scan of that agent's rows);
 * - exact scan: `VectorIndex.searchExact` over the same rows (the reference for recall@10, and the old path).
 *
 *
 * On request, the index alone (VectorIndex, no SQLite) at 1M: rows added, graph built on every core (timed, wall and
 * CPU), 200 searches, recall@10 on 20 of them against the exact scan (~1 s each at 1M). Not in the default run: the
 * 1M graph took 1,583 s of CPU to build here (2026-12-03, load 5-10), i.e. 13+ minutes on 2 idle cores, past the
 * scenario's budget. No database: bulk-inserting 1M rows into SQLite would add minutes and measure nothing new.
 *
 *   node --import tsx bench/memory-search.ts            (SLUICE_BENCH_MEMORIES=10000,100000 to choose sizes)
 *   SLUICE_BENCH_MEMORIES_INDEX=1000000 ...              adds index-alone rows at those sizes (~15-40 min at 1M)
 */
import { Context, Effect, Layer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { VectorIndex } from "../src/Agent/VectorIndex.js"
import { hnswDefaults } from "../src/Agent/VectorIndexHnsw.js"
import { VectorMemory } from "../src/Agent/VectorMemory.js"
import { Embedder } from "../src/Agent/VectorMemoryEmbedder.js"
import { MemoriesRepo } from "../src/Store/MemoriesRepo.js"
import * as Store from "../src/Store/Store.js"
import * as Report from "./support/Report.js"
import { fmt, percentile } from "./support/Stats.js"

const sizes = (process.env.SLUICE_BENCH_MEMORIES ?? "10000,100000").split(",").filter(Boolean).map(Number)
const indexOnlySizes = (process.env.SLUICE_BENCH_MEMORIES_INDEX ?? "").split(",").filter(Boolean).map(Number)
const dim = 768
const latent = 32
const noise = 0.3
const queries = 200
const writes = 200
const k = 10
const agents = 100
const namespace = "bench"
const model = "nomic-embed-text:latest"

/** Deterministic embedding-like unit vectors: latent Gaussian point × fixed matrix + noise (mulberry32). */
const generator = (seed: number) => {
  let state = 12345
  const next = () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const gauss = () => Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next())
  const basis = Float64Array.from({ length: dim * latent }, () => gauss() / Math.sqrt(latent))
  state = seed
  const z = new Float64Array(latent)
  return (): Float32Array => {
    for (let j = 0; j < latent; j++) z[j] = gauss()
    const v = new Float32Array(dim)
    let sq = 0
    for (let i = 0; i < dim; i++) {
      let s = noise * gauss()
      for (let j = 0; j < latent; j++) s += basis[i * latent + j]! * z[j]!
      v[i] = s
      sq += s * s
    }
    const scale = 1 / Math.sqrt(sq)
    for (let i = 0; i < dim; i++) v[i]! *= scale
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

const mb = (bytes: number) => `${Math.round(bytes / 1e6)} MB`

/** Overlap of each result list with the exact one, over all queries. */
const overlap = (got: ReadonlyArray<ReadonlyArray<string>>, exact: ReadonlyArray<ReadonlyArray<string>>) => {
  let found = 0
  let wanted = 0
  got.forEach((ids, i) => {
    const truth = new Set(exact[i])
    wanted += truth.size
    found += ids.filter((id) => truth.has(id)).length
  })
  return found / wanted
}

/** The bench's first n rows in an index without a graph (the exact reference). */
const exactIndex = (n: number) => {
  const index = new VectorIndex(dim, n, { approximateFrom: Infinity })
  const vector = generator(1)
  for (let i = 0; i < n; i++) index.add(`m${i}`, `agent${i % agents}`, 0, vector())
  return index
}

/** Exact top k (the reference) and the exact scan's own latency (wall and this process's CPU). */
const exactScan = (index: VectorIndex, qs: ReadonlyArray<ArrayLike<number>>, agent?: (i: number) => string) => {
  const wall: Array<number> = []
  const cpu: Array<number> = []
  const ids = qs.map((q, i) => {
    const start = performance.now()
    const before = process.cpuUsage()
    const hits = index.searchExact(q, k, { agent: agent?.(i) })
    const used = process.cpuUsage(before)
    wall.push(performance.now() - start)
    cpu.push((used.user + used.system) / 1000)
    return hits.map((h) => h.id)
  })
  return { ids, wall: latency(wall), cpu: latency(cpu) }
}

const runSize = (n: number) =>
  Effect.gen(function* () {
    const insertStart = performance.now()
    yield* bulkInsert(n)
    const insertMs = performance.now() - insertStart
    const startAt = performance.now()
    const memory = yield* Effect.map(Layer.build(VectorMemory.Default({ capacity: 1000 })), Context.get(VectorMemory))
    const rebuildMs = performance.now() - startAt
    yield* memory.indexed
    const graphMs = performance.now() - startAt - rebuildMs
    const [stats] = yield* memory.stats
    const rss = process.memoryUsage().rss
    const query = generator(2)
    const qs = Array.from({ length: queries }, () => Array.from(query()))
    const found: Array<Array<string>> = []
    const foundByAgent: Array<Array<string>> = []
    const keep = (into: Array<Array<string>>) => (hits: ReadonlyArray<{ memory: { id: string } }>) =>
      into.push(hits.map((h) => h.memory.id))
    const recall = yield* timed(queries, (i) => Effect.tap(memory.recall({ namespace, query: qs[i]!, k }), keep(found)))
    const byAgent = yield* timed(queries, (i) =>
      Effect.tap(memory.recall({ namespace, query: qs[i]!, k, agent: `agent${i}` }), keep(foundByAgent))
    )
    const fresh = generator(3)
    const write = yield* timed(writes, (i) =>
      memory.rememberVector({
        agent: `agent${i % agents}`,
        namespace,
        text: `new ${i}`,
        model,
        vector: Array.from(fresh())
      })
    )
    const reference = exactIndex(n)
    const exact = exactScan(reference, qs)
    const exactByAgent = exactScan(reference, qs, (i) => `agent${i}`)
    return {
      ...{ memories: n, mode: stats?.index, insertMs, rebuildMs, graphMs, rss, recall, byAgent, write },
      recallAt10: overlap(found, exact.ids),
      recallAt10ByAgent: overlap(foundByAgent, exactByAgent.ids),
      exact: { wall: exact.wall, cpu: exact.cpu }
    }
  }).pipe(Effect.scoped, Effect.provide(MemoriesRepo.Default.pipe(Layer.provideMerge(databaseIn(n)))))

/** A fresh file-backed database per size, deleted afterwards. */
const databaseIn = (n: number) =>
  Layer.unwrapScoped(
    Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), `sluice-memory-${n}-`))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    ).pipe(Effect.map((dir) => Layer.merge(Store.layerSqlite({ dataDir: dir }), noEmbedder)))
  )

/** The index alone at size n: rows loaded, graph built on every core, 200 searches, recall@10 on 20 of them. */
const indexAlone = (n: number) => {
  const rssBefore = process.memoryUsage().rss
  const index = new VectorIndex(dim, n)
  const vector = generator(1)
  let loadMs = 0
  for (let i = 0; i < n; i++) {
    const v = vector() // generating a row is the bench's cost, not the index's
    const start = performance.now()
    index.add(`m${i}`, `agent${i % agents}`, 0, v)
    loadMs += performance.now() - start
  }
  const buildStart = performance.now()
  const cpuBefore = process.cpuUsage()
  while (index.buildStep(1024, availableParallelism())) {}
  const cpu = process.cpuUsage(cpuBefore)
  const buildMs = performance.now() - buildStart
  const rss = process.memoryUsage().rss - rssBefore
  const query = generator(2)
  const qs = Array.from({ length: queries }, () => Array.from(query()))
  const wall = qs.map((q) => {
    const start = performance.now()
    index.search(q, k)
    return performance.now() - start
  })
  const sample = qs.slice(0, 20)
  const found = sample.map((q) => index.search(q, k).map((h) => h.id))
  const exact = sample.map((q) => index.searchExact(q, k).map((h) => h.id))
  return {
    memories: n,
    loadMs,
    buildMs,
    buildCpuMs: (cpu.user + cpu.system) / 1000,
    rss,
    search: latency(wall),
    recallAt10: overlap(found, exact)
  }
}

const results = []
for (const n of sizes) {
  results.push(await Effect.runPromise(runSize(n)))
  console.error(`memory-search: ${n} done`)
}
const alone = indexOnlySizes.map((n) => {
  const measured = indexAlone(n)
  console.error(`memory-search: index alone at ${n} done`)
  return measured
})
const ms = (l: Latency) => [fmt.ms(l.p50), fmt.ms(l.p99)]
const count = (n: number) => n.toLocaleString("en-US")
Report.write({
  scenario: "memory-search",
  title: "VectorMemory recall at 10k and 100k memories (dimension 768), HNSW graph against the exact scan",
  setup: [
    `${queries} sequential queries per row, k = ${k}, ${agents} agents in one namespace; embedding-like vectors ` +
      `(a ${latent}-dimensional latent point mapped to ${dim} dimensions, plus noise), queries from the same law.`,
    "From 5,000 memories a namespace is searched through an HNSW graph (usearch, int8, " +
      `M ${hnswDefaults.connectivity}, ef construction ${hnswDefaults.expansionAdd}, ef ${hnswDefaults.expansionSearch}) whose ` +
      "candidates (4 per result) are scored exactly on the float32 rows; below that, and for filters leaving " +
      "fewer rows, an exact scan.",
    "Rows bulk-inserted through MemoriesRepo (5000 per transaction); file-backed SQLite (WAL, synchronous NORMAL) " +
      "in a temporary directory; at start the rows are loaded, then the graph built in the background.",
    "recall@10 = share of the exact top 10 (VectorIndex.searchExact over the same rows) found by recall."
  ],
  tables: [
    {
      headers: [
        "memories",
        "bulk insert",
        "load at start",
        "graph build",
        "RSS",
        "recall p50",
        "recall p99",
        "recall@10",
        "by agent p50",
        "by agent p99",
        "by agent recall@10",
        "exact scan p50",
        "exact scan CPU p50",
        "rememberVector p50",
        "rememberVector p99"
      ],
      rows: results.map((r) => [
        count(r.memories),
        `${fmt.rps(r.memories / (r.insertMs / 1000))} rows/s`,
        fmt.ms(r.rebuildMs),
        `${(r.graphMs / 1000).toFixed(1)} s`,
        mb(r.rss),
        ...ms(r.recall),
        r.recallAt10.toFixed(3),
        ...ms(r.byAgent),
        r.recallAt10ByAgent.toFixed(3),
        fmt.ms(r.exact.wall.p50),
        fmt.ms(r.exact.cpu.p50),
        ...ms(r.write)
      ])
    },
    ...(alone.length === 0
      ? []
      : [
          {
            title: "The index alone (VectorIndex: float32 rows + int8 graph), no SQLite",
            headers: [
              "memories",
              "rows added",
              "graph build",
              "build CPU",
              "RSS added",
              "search p50",
              "search p99",
              "recall@10 (20 queries)"
            ],
            rows: alone.map((r) => [
              count(r.memories),
              `${(r.loadMs / 1000).toFixed(1)} s`,
              `${(r.buildMs / 1000).toFixed(0)} s`,
              `${(r.buildCpuMs / 1000).toFixed(0)} s`,
              mb(r.rss),
              ...ms(r.search),
              r.recallAt10.toFixed(3)
            ])
          }
        ])
  ],
  notes: [
    "recall = graph search + exact re-scoring + SELECT of the k rows; their usage marks are written behind (one " +
      "transaction a second, VectorMemoryUsage.ts), so a flush may fall inside a timed recall.",
    "by agent = an agent holds 1 % of the rows (under the 5,000 threshold): an exact scan of its rows.",
    "graph build = from the end of the load until `indexed` (every core; recall is answered by exact scans meanwhile).",
    "exact scan = the whole-namespace scan the graph replaces; CPU = this process's CPU time during one search.",
    "rememberVector = a top-1 search of the same agent's rows for a near-duplicate + INSERT (+ eviction check)."
  ],
  data: { results, alone }
})
