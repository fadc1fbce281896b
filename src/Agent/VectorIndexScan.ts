/**
 * The arithmetic of VectorIndex's exact scan: normalisation, a dot product over a row of the contiguous storage,
 * and a bounded min-heap of the k best rows. Kept apart so the index itself is only bookkeeping.
 *
 * Written by hand: the loops are a few lines, allocate nothing per row, and the unrolled dot product is what makes
 * the scan ~1 µs per 768-dimension row on this machine (see bench/memory-search.ts).
 */

/** Normalises `source` into `target` at `offset`; a zero vector is written as zeros. */
export const normalizeInto = (source: ArrayLike<number>, target: Float32Array, offset: number): void => {
  const dim = source.length
  let sq = 0
  for (let i = 0; i < dim; i++) sq += source[i]! * source[i]!
  const scale = sq === 0 ? 0 : 1 / Math.sqrt(sq)
  for (let i = 0; i < dim; i++) target[offset + i] = source[i]! * scale
}

/** The dot product of the row at `offset` in `rows` with `query` (both of length `dim`). */
export const dot = (rows: Float32Array, offset: number, query: Float32Array, dim: number): number => {
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
export class TopK {
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
