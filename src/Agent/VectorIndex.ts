/**
 * The in-memory vector index of one namespace: cosine top-k over contiguous float32 rows, exact for small
 * namespaces and through an HNSW graph (VectorIndexHnsw.ts, usearch) from `approximateFrom` rows on.
 *
 * Choices:
 * - Rows are L2-normalised at insert, so cosine similarity is a dot product; a zero vector stays zero (score 0).
 * - One Float32Array holds every row (`capacity × dim`), with parallel arrays for the id, the agent (interned to a
 *   small integer), the creation time and the graph key, so filters cost a comparison and no object is touched.
 * - Removal swaps the last row into the hole (O(dim)); storage doubles when full and halves when a quarter full,
 *   so the index shrinks with the table; an agent's code is recycled once it has no rows.
 * - Exact below 5,000 rows: a scan costs ~1 µs a row (768 dimensions), so ≤ ~5 ms there, with recall 1 and nothing
 *   to build; a graph costs ~0.3 ms of CPU a row to build. The graph is dropped again below half the threshold.
 * - The graph is built in steps (`buildStep`, driven by VectorMemory in the background), rows `[0, built)` being in
 *   it; until every row is, searches scan exactly. Once built, a write adds its row to the graph at once.
 * - The graph only proposes candidates: they are scored exactly on the float32 rows, and filtered by agent and time
 *   here (usearch's JS binding has no filtered search). With a filter the fetch grows by total / passing rows, and
 *   ×4 while fewer than k pass; when a filter leaves fewer than `approximateFrom` rows, or the fetch would pass a
 *   quarter of the rows, the exact scan answers. So an agent with >= k rows always gets k results.
 * - `searchExact` is the reference scan (tests and the bench measure recall against it).
 * - Searches are synchronous: nothing interleaves with one.
 */
import { Hnsw, hnswDefaults, type HnswOptions } from "./VectorIndexHnsw.js"
import { dot, normalizeInto, TopK } from "./VectorIndexScan.js"

export { normalizeInto } from "./VectorIndexScan.js"

export interface Filter {
  /** Only this agent's rows. */
  readonly agent?: string | undefined
  /** Created at or after (epoch ms). */
  readonly since?: number | undefined
  /** Created at or before (epoch ms). */
  readonly until?: number | undefined
  /** Only scores at or above. */
  readonly minScore?: number | undefined
}

export interface Hit {
  readonly id: string
  readonly score: number
}

export interface Options {
  /** Rows from which searches go through an HNSW graph (default 5000). */
  readonly approximateFrom?: number
  /** Candidates taken from the graph per result wanted, before exact scoring (default 4). */
  readonly oversample?: number
  readonly hnsw?: HnswOptions
}

/** How searches are answered: a scan, a scan while the graph is built, or the graph. */
export type Mode = "exact" | "building" | "approximate"

export const indexDefaults = { approximateFrom: 5000, oversample: 4 } as const

const minCapacity = 16

interface Resolved {
  readonly agent: number
  readonly since: number
  readonly until: number
  readonly minScore: number
}

export class VectorIndex {
  private vectors: Float32Array
  private agents: Int32Array
  private created: Float64Array
  private keys: Float64Array
  private ids: Array<string> = []
  private readonly rowOf = new Map<string, number>()
  private readonly rowOfKey = new Map<number, number>()
  private readonly agentCode = new Map<string, number>()
  private readonly perAgent: Array<number> = []
  private readonly freeCodes: Array<number> = []
  private readonly scratch: Float32Array
  private readonly approximateFrom: number
  private graph: Hnsw | undefined
  private built = 0
  private nextKey = 0
  private size = 0

  constructor(
    readonly dim: number,
    capacity = minCapacity,
    private readonly options: Options = {}
  ) {
    const rows = Math.max(minCapacity, capacity)
    this.vectors = new Float32Array(rows * dim)
    this.agents = new Int32Array(rows)
    this.created = new Float64Array(rows)
    this.keys = new Float64Array(rows)
    this.scratch = new Float32Array(dim)
    this.approximateFrom = Math.max(1, options.approximateFrom ?? indexDefaults.approximateFrom)
  }

  get length(): number {
    return this.size
  }

  get mode(): Mode {
    return this.graph === undefined ? "exact" : this.built < this.size ? "building" : "approximate"
  }

  /** Rows of one agent (all rows without an agent). */
  count(agent?: string): number {
    if (agent === undefined) return this.size
    const code = this.agentCode.get(agent)
    return code === undefined ? 0 : this.perAgent[code]!
  }

  /** Agents with at least one row. */
  agentsPresent(): Array<string> {
    return [...this.agentCode.keys()]
  }

  has(id: string): boolean {
    return this.rowOf.has(id)
  }

  /** The ids of every row (a copy). */
  allIds(): Array<string> {
    return this.ids.slice()
  }

  /** Adds (or replaces) a row; the vector is normalised on the way in. */
  add(id: string, agent: string, createdAt: number, vector: ArrayLike<number>): void {
    if (vector.length !== this.dim) throw new RangeError(`vector of ${vector.length} in an index of ${this.dim}`)
    this.remove(id)
    if (this.size === this.agents.length) this.resize(this.size * 2)
    const row = this.size++
    normalizeInto(vector, this.vectors, row * this.dim)
    const code = this.codeOf(agent)
    this.agents[row] = code
    this.perAgent[code]!++
    this.created[row] = createdAt
    this.ids[row] = id
    this.rowOf.set(id, row)
    const key = this.nextKey++
    this.keys[row] = key
    this.rowOfKey.set(key, row)
    if (this.graph === undefined && this.size >= this.approximateFrom) {
      this.graph = new Hnsw(this.dim, this.options.hnsw ?? hnswDefaults)
      this.built = 0
    } else if (this.graph !== undefined && this.built === row) {
      this.index(row, 1)
      this.built++
    }
  }

  /** Removes a row if present: the last row moves into its place. */
  remove(id: string): boolean {
    const row = this.rowOf.get(id)
    if (row === undefined) return false
    const last = --this.size
    this.release(this.agents[row]!)
    this.rowOfKey.delete(this.keys[row]!)
    if (row < this.built) this.graph?.remove(this.keys[row]!)
    if (row !== last) {
      this.vectors.copyWithin(row * this.dim, last * this.dim, (last + 1) * this.dim)
      this.agents[row] = this.agents[last]!
      this.created[row] = this.created[last]!
      this.keys[row] = this.keys[last]!
      this.ids[row] = this.ids[last]!
      this.rowOf.set(this.ids[row]!, row)
      this.rowOfKey.set(this.keys[row]!, row)
      // rows [0, built) are in the graph: one that was not moves below `built`, so it goes in now
      if (row < this.built && last >= this.built) this.index(row, 1)
    }
    this.ids.length = last
    this.rowOf.delete(id)
    this.built = Math.min(this.built, this.size)
    if (this.graph !== undefined && this.size < this.approximateFrom / 2) {
      this.graph = undefined
      this.built = 0
    }
    if (this.agents.length > minCapacity && this.size <= this.agents.length / 4) this.resize(this.agents.length / 2)
    return true
  }

  /** Adds up to `rows` more rows to the graph; true while rows remain outside it. */
  buildStep(rows: number, threads = 1): boolean {
    if (this.graph === undefined || this.built >= this.size) return false
    const end = Math.min(this.size, this.built + rows)
    this.index(this.built, end - this.built, threads)
    this.built = end
    return this.built < this.size
  }

  /** The k rows most similar to `query` (any scale; normalised here) that pass the filter, best first. */
  search(query: ArrayLike<number>, k: number, filter: Filter = {}): Array<Hit> {
    const f = this.prepare(query, k, filter)
    if (f === undefined) return []
    if (this.mode === "approximate") {
      const passing = this.passing(f)
      if (passing >= this.approximateFrom) {
        const hits = this.approximate(k, f, passing)
        if (hits !== undefined) return hits
      }
    }
    return this.scan(k, f)
  }

  /** The exact top k, whatever the mode (the recall reference). */
  searchExact(query: ArrayLike<number>, k: number, filter: Filter = {}): Array<Hit> {
    const f = this.prepare(query, k, filter)
    return f === undefined ? [] : this.scan(k, f)
  }

  /** Normalises the query into the scratch row and resolves the filter; undefined when nothing can match. */
  private prepare(query: ArrayLike<number>, k: number, filter: Filter): Resolved | undefined {
    if (query.length !== this.dim) throw new RangeError(`query of ${query.length} in an index of ${this.dim}`)
    const agent = filter.agent === undefined ? -1 : this.agentCode.get(filter.agent)
    if (agent === undefined || k <= 0 || this.size === 0) return undefined
    normalizeInto(query, this.scratch, 0)
    const since = filter.since ?? -Infinity
    const until = filter.until ?? Infinity
    return { agent, since, until, minScore: filter.minScore ?? -Infinity }
  }

  private passes(row: number, f: Resolved): boolean {
    if (f.agent !== -1 && this.agents[row] !== f.agent) return false
    const created = this.created[row]!
    return created >= f.since && created <= f.until
  }

  /** Rows passing the agent and time filters (a pass over the small columns when a time bound is set). */
  private passing(f: Resolved): number {
    if (f.since === -Infinity && f.until === Infinity) return f.agent === -1 ? this.size : this.perAgent[f.agent]!
    let n = 0
    for (let row = 0; row < this.size; row++) if (this.passes(row, f)) n++
    return n
  }

  private scan(k: number, f: Resolved): Array<Hit> {
    const top = new TopK(Math.min(k, this.size))
    for (let row = 0; row < this.size; row++) {
      if (!this.passes(row, f)) continue
      const score = dot(this.vectors, row * this.dim, this.scratch, this.dim)
      if (score >= f.minScore) top.offer(score, row)
    }
    return this.hits(top)
  }

  /** Candidates from the graph, filtered and scored exactly; undefined when the exact scan should answer. */
  private approximate(k: number, f: Resolved, passing: number): Array<Hit> | undefined {
    let fetch = Math.ceil((k * this.size) / passing) * (this.options.oversample ?? indexDefaults.oversample)
    for (;;) {
      const keys = this.graph!.search(this.scratch, fetch)
      const top = new TopK(Math.min(k, passing))
      let farthest = Infinity
      for (const key of keys) {
        const row = this.rowOfKey.get(Number(key))
        if (row === undefined || !this.passes(row, f)) continue
        const score = dot(this.vectors, row * this.dim, this.scratch, this.dim)
        farthest = score
        if (score >= f.minScore) top.offer(score, row)
      }
      // full, or the farthest passing candidate is already below minScore (farther ones are too, approximately)
      if (top.size === top.k || farthest < f.minScore) return this.hits(top)
      if (keys.length < fetch || fetch * 4 > this.size / 4) return undefined
      fetch *= 4
    }
  }

  private hits(top: TopK): Array<Hit> {
    const hits: Array<Hit> = []
    for (let i = 0; i < top.size; i++) hits.push({ id: this.ids[top.rows[i]!]!, score: top.scores[i]! })
    return hits.sort((a, b) => b.score - a.score)
  }

  /** Puts `count` rows from `row` into the graph. */
  private index(row: number, count: number, threads = 1): void {
    const keys = new BigUint64Array(count)
    for (let i = 0; i < count; i++) keys[i] = BigInt(this.keys[row + i]!)
    this.graph!.add(keys, this.vectors.subarray(row * this.dim, (row + count) * this.dim), threads)
  }

  private codeOf(agent: string): number {
    const known = this.agentCode.get(agent)
    if (known !== undefined) return known
    const code = this.freeCodes.pop() ?? this.perAgent.length
    this.agentCode.set(agent, code)
    this.perAgent[code] = 0
    return code
  }

  /** One row fewer for the agent; an agent without rows gives its code back (agents seen do not accumulate). */
  private release(code: number): void {
    if (--this.perAgent[code]! > 0) return
    for (const [agent, c] of this.agentCode) if (c === code) this.agentCode.delete(agent)
    this.freeCodes.push(code)
  }

  private resize(rows: number): void {
    const grow = <A extends Float32Array | Float64Array | Int32Array>(from: A, to: A, width: number): A => {
      to.set(from.subarray(0, this.size * width))
      return to
    }
    this.vectors = grow(this.vectors, new Float32Array(rows * this.dim), this.dim)
    this.agents = grow(this.agents, new Int32Array(rows), 1)
    this.created = grow(this.created, new Float64Array(rows), 1)
    this.keys = grow(this.keys, new Float64Array(rows), 1)
  }
}
