/**
 * The in-memory vector index of one namespace: brute-force cosine top-k over contiguous float32 rows.
 *
 * Choices:
 * - Rows are L2-normalised at insert, so cosine similarity is a dot product; a zero vector stays zero (score 0).
 * - One Float32Array holds every row (`capacity × dim`), with parallel arrays for the id, the agent (interned to a
 *   small integer) and the creation time, so filters cost a comparison and no object is touched while scanning.
 * - Removal swaps the last row into the hole (O(dim)); storage doubles when full and halves when a quarter full,
 *   so the index shrinks with the table; an agent's code is recycled once it has no rows.
 * - Top-k keeps a min-heap of k entries; a query normalises into a scratch row owned by the index, so a search
 *   allocates only its k results. Searches are synchronous: nothing interleaves with a scan.
 * - Exact search, no approximate structure: at 100k × 768 a scan is ~77M multiply-adds (see bench/memory-search.ts
 *   for the measured latency); an HNSW/IVF index is the next step if that is too slow.
 */

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

const minCapacity = 16

/** Normalises `source` into `target` at `offset`; a zero vector is written as zeros. */
export const normalizeInto = (source: ArrayLike<number>, target: Float32Array, offset: number): void => {
  const dim = source.length
  let sq = 0
  for (let i = 0; i < dim; i++) sq += source[i]! * source[i]!
  const scale = sq === 0 ? 0 : 1 / Math.sqrt(sq)
  for (let i = 0; i < dim; i++) target[offset + i] = source[i]! * scale
}

const dot = (rows: Float32Array, offset: number, query: Float32Array, dim: number): number => {
  let a = 0
  let b = 0
  let c = 0
  let d = 0
  let i = 0
  for (; i + 3 < dim; i += 4) {
    a += rows[offset + i]! * query[i]!
    b += rows[offset + i + 1]! * query[i + 1]!
    c += rows[offset + i + 2]! * query[i + 2]!
    d += rows[offset + i + 3]! * query[i + 3]!
  }
  for (; i < dim; i++) a += rows[offset + i]! * query[i]!
  return a + b + c + d
}

/** A min-heap of (score, row) of bounded size: the k best seen so far, the worst on top. */
class TopK {
  readonly scores: Float64Array
  readonly rows: Int32Array
  size = 0
  constructor(readonly k: number) {
    this.scores = new Float64Array(k)
    this.rows = new Int32Array(k)
  }
  offer(score: number, row: number): void {
    if (this.size < this.k) {
      let i = this.size++
      while (i > 0) {
        const parent = (i - 1) >> 1
        if (this.scores[parent]! <= score) break
        this.scores[i] = this.scores[parent]!
        this.rows[i] = this.rows[parent]!
        i = parent
      }
      this.scores[i] = score
      this.rows[i] = row
    } else if (score > this.scores[0]!) this.replaceTop(score, row)
  }
  private replaceTop(score: number, row: number): void {
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= this.size) break
      const right = left + 1
      const child = right < this.size && this.scores[right]! < this.scores[left]! ? right : left
      if (this.scores[child]! >= score) break
      this.scores[i] = this.scores[child]!
      this.rows[i] = this.rows[child]!
      i = child
    }
    this.scores[i] = score
    this.rows[i] = row
  }
}

export class VectorIndex {
  private vectors: Float32Array
  private agents: Int32Array
  private created: Float64Array
  private ids: Array<string> = []
  private readonly rowOf = new Map<string, number>()
  private readonly agentCode = new Map<string, number>()
  private readonly perAgent: Array<number> = []
  private readonly freeCodes: Array<number> = []
  private readonly scratch: Float32Array
  private size = 0

  constructor(
    readonly dim: number,
    capacity = minCapacity
  ) {
    const rows = Math.max(minCapacity, capacity)
    this.vectors = new Float32Array(rows * dim)
    this.agents = new Int32Array(rows)
    this.created = new Float64Array(rows)
    this.scratch = new Float32Array(dim)
  }

  get length(): number {
    return this.size
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
  }

  /** Removes a row if present: the last row moves into its place. */
  remove(id: string): boolean {
    const row = this.rowOf.get(id)
    if (row === undefined) return false
    const last = --this.size
    this.release(this.agents[row]!)
    if (row !== last) {
      this.vectors.copyWithin(row * this.dim, last * this.dim, (last + 1) * this.dim)
      this.agents[row] = this.agents[last]!
      this.created[row] = this.created[last]!
      this.ids[row] = this.ids[last]!
      this.rowOf.set(this.ids[row]!, row)
    }
    this.ids.length = last
    this.rowOf.delete(id)
    if (this.agents.length > minCapacity && this.size <= this.agents.length / 4) this.resize(this.agents.length / 2)
    return true
  }

  /** The k rows most similar to `query` (any scale; normalised here) that pass the filter, best first. */
  search(query: ArrayLike<number>, k: number, filter: Filter = {}): Array<Hit> {
    if (query.length !== this.dim) throw new RangeError(`query of ${query.length} in an index of ${this.dim}`)
    const agent = filter.agent === undefined ? -1 : this.agentCode.get(filter.agent)
    if (agent === undefined || k <= 0 || this.size === 0) return []
    normalizeInto(query, this.scratch, 0)
    const top = new TopK(Math.min(k, this.size))
    const since = filter.since ?? -Infinity
    const until = filter.until ?? Infinity
    const minScore = filter.minScore ?? -Infinity
    for (let row = 0; row < this.size; row++) {
      if (agent !== -1 && this.agents[row] !== agent) continue
      const created = this.created[row]!
      if (created < since || created > until) continue
      const score = dot(this.vectors, row * this.dim, this.scratch, this.dim)
      if (score >= minScore) top.offer(score, row)
    }
    const hits: Array<Hit> = []
    for (let i = 0; i < top.size; i++) hits.push({ id: this.ids[top.rows[i]!]!, score: top.scores[i]! })
    return hits.sort((a, b) => b.score - a.score)
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
    const vectors = new Float32Array(rows * this.dim)
    vectors.set(this.vectors.subarray(0, this.size * this.dim))
    const agents = new Int32Array(rows)
    agents.set(this.agents.subarray(0, this.size))
    const created = new Float64Array(rows)
    created.set(this.created.subarray(0, this.size))
    this.vectors = vectors
    this.agents = agents
    this.created = created
  }
}
