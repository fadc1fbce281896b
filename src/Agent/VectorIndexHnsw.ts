/**
 * The approximate part of VectorIndex: an HNSW graph from usearch (Unum, Apache-2.0), keyed by integers.
 *
 * Why usearch rather than hnswlib-node (both installed and measured on this machine):
 * - Install: usearch ships N-API binaries for linux-x64/arm64 and macOS inside its npm tarball, so `npm ci` needs
 *   no compiler and no install script (npm's allowScripts can stay off for it); hnswlib-node compiles hnswlib with
 *   node-gyp at install (its script must be allowed; ~2 minutes on this 2-core machine).
 * - Speed and memory: usearch stores the graph's vectors quantised (int8 here: 768 bytes a row instead of 3072)
 *   and adds a batch on several threads; hnswlib-node keeps float32, adds one point per call from a JS Array.
 *   Built at int8, usearch indexed 10k × 768 in 3.0 s of CPU where float32 took 12.3 s; the exact re-scoring
 *   below gives back what int8 costs in recall.
 * - Deletes: both mark deleted; usearch reuses the slots of removed keys for later adds.
 * - Filtering: hnswlib-node calls a JS predicate per visited node; usearch's JS binding has no filtered search, so
 *   VectorIndex over-fetches and filters on its own columns (agent, time), then re-scores exactly.
 * - Persistence: both save and load a file; not used yet (the index is rebuilt from SQLite at start, in the
 *   background, exact scans answering meanwhile).
 * - Maintenance: usearch is released often by its company's team (2.16 to 2.26 on npm); hnswlib-node is one
 *   person's binding of hnswlib (3.0.0 latest). Both Apache-2.0.
 * - Pinned at 2.25.3: from 2.26 its package.json asks for Node 22, and Sluice supports Node 20.
 *
 * Scores returned by the graph are approximate (int8); VectorIndex uses the graph only to pick candidates and
 * scores them exactly against its float32 rows.
 */
import usearch, { type Index } from "usearch"

export interface HnswOptions {
  /** Edges per node (M). */
  readonly connectivity: number
  /** Candidate list while inserting (efConstruction). */
  readonly expansionAdd: number
  /** Candidate list while searching (ef); a search for more results than this widens it to their number. */
  readonly expansionSearch: number
}

/**
 * Tuned at 100k × 768 (bench/memory-search.ts vectors, 200 queries): ef 128 gave recall@10 0.935 (search CPU p50
 * 2.3 ms), 160 0.959 (3.0 ms), 200 0.979 (3.8 ms); 176 keeps a margin above 0.95. Build: ~1 ms of CPU a row at 100k.
 */
export const hnswDefaults: HnswOptions = { connectivity: 16, expansionAdd: 64, expansionSearch: 176 }

export class Hnsw {
  private readonly index: Index

  constructor(
    readonly dim: number,
    options: HnswOptions = hnswDefaults
  ) {
    this.index = new usearch.Index({
      dimensions: dim,
      metric: usearch.MetricKind.Cos,
      quantization: usearch.ScalarKind.I8,
      connectivity: options.connectivity,
      expansion_add: options.expansionAdd,
      expansion_search: options.expansionSearch,
      multi: false
    })
  }

  /** Entries in the graph (removed ones excluded). */
  get size(): number {
    return this.index.size()
  }

  /** Adds `keys.length` rows, stored one after the other in `rows` (normalised float32). */
  add(keys: BigUint64Array, rows: Float32Array, threads: number): void {
    this.index.add(keys, rows, threads)
  }

  remove(key: number): void {
    this.index.remove(BigInt(key))
  }

  /** Up to `count` keys near `query`, nearest first (by the graph's quantised distance). */
  search(query: Float32Array, count: number): BigUint64Array {
    return this.index.search(query, count, 1).keys
  }
}
