/**
 * VectorIndex with its HNSW graph: recall against the exact scan (the reference), the graph built in steps and kept
 * in step with removals, per-agent and time filters, small namespaces exact.
 */
import { assert, describe, it } from "@effect/vitest"
import { type Filter, VectorIndex } from "../../src/Agent/VectorIndex.js"

/** Deterministic pseudo-random numbers (mulberry32). */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const dim = 32
const vectors = (n: number, next = random(11)) =>
  Array.from({ length: n }, () => Array.from({ length: dim }, () => next() * 2 - 1))

/** Mean overlap of the index's top k with the exact top k over the queries. */
const recall = (index: VectorIndex, queries: ReadonlyArray<ReadonlyArray<number>>, k: number, filter?: Filter) => {
  let found = 0
  let wanted = 0
  for (const q of queries) {
    const truth = new Set(index.searchExact(q, k, filter).map((h) => h.id))
    wanted += truth.size
    for (const hit of index.search(q, k, filter)) if (truth.has(hit.id)) found++
  }
  return found / wanted
}

/** An index of `n` rows over 4 agents ("a0" holds half of them), created at their number, graph fully built. */
const built = (n: number, approximateFrom = 500) => {
  const rows = vectors(n)
  const index = new VectorIndex(dim, 0, { approximateFrom })
  rows.forEach((v, i) => index.add(`r${i}`, i % 2 === 0 ? "a0" : `a${1 + (i % 3)}`, i, v))
  while (index.buildStep(300)) {
    assert.strictEqual(index.mode, "building")
  }
  return { rows, index }
}

const queries = vectors(100, random(99))

describe("VectorIndex: approximate", () => {
  it("reaches recall@10 >= 0.95 against the exact scan on 3000 random vectors", () => {
    const { index } = built(3000)
    assert.strictEqual(index.mode, "approximate")
    assert.isAtLeast(recall(index, queries, 10), 0.95)
    for (const q of queries.slice(0, 10)) {
      const hits = index.search(q, 10)
      assert.strictEqual(hits.length, 10)
      assert.deepStrictEqual(
        hits.map((h) => h.score),
        [...hits.map((h) => h.score)].sort((a, b) => b - a)
      )
    }
  })

  it("answers exactly while the graph is being built, and below the threshold", () => {
    const rows = vectors(800)
    const index = new VectorIndex(dim, 0, { approximateFrom: 1000 })
    rows.forEach((v, i) => index.add(`r${i}`, "a", i, v))
    assert.strictEqual(index.mode, "exact")
    assert.isFalse(index.buildStep(100))
    for (const q of queries.slice(0, 10)) assert.deepStrictEqual(index.search(q, 10), index.searchExact(q, 10))
    vectors(400, random(5)).forEach((v, i) => index.add(`s${i}`, "a", i, v))
    assert.strictEqual(index.mode, "building")
    index.buildStep(500)
    for (const q of queries.slice(0, 10)) assert.deepStrictEqual(index.search(q, 10), index.searchExact(q, 10))
  })

  it("filters by agent: k results of that agent, exact for a small agent, approximate for a large one", () => {
    const { index } = built(3000)
    for (const q of queries.slice(0, 20)) {
      const large = index.search(q, 10, { agent: "a0" })
      assert.strictEqual(large.length, 10)
      const small = index.search(q, 10, { agent: "a2" })
      assert.deepStrictEqual(small, index.searchExact(q, 10, { agent: "a2" }))
    }
    assert.isAtLeast(recall(index, queries, 10, { agent: "a0" }), 0.95)
    assert.isAtLeast(recall(index, queries, 10, { since: 500, until: 2900 }), 0.95)
    const window = index.search(queries[0]!, 10, { since: 1000, until: 1100 })
    assert.deepStrictEqual(window, index.searchExact(queries[0]!, 10, { since: 1000, until: 1100 }))
    const [best] = index.searchExact(queries[1]!, 1)
    assert.deepStrictEqual(index.search(queries[1]!, 10, { minScore: best!.score }), [best])
  })

  it("reflects removals: removed rows never come back, moved rows stay findable, through building and after", () => {
    const rows = vectors(2000)
    const index = new VectorIndex(dim, 0, { approximateFrom: 500 })
    rows.forEach((v, i) => index.add(`r${i}`, "a", i, v))
    index.buildStep(700) // part built: removals below and above the built rows move unbuilt rows down
    for (let i = 0; i < 2000; i += 3) index.remove(`r${(i * 7) % 2000}`)
    while (index.buildStep(300)) {}
    const added = vectors(300, random(21))
    added.forEach((v, i) => index.add(`n${i}`, "a", i, v)) // straight into the built graph
    assert.strictEqual(index.mode, "approximate")
    for (let i = 1; i < 2000; i += 3) index.remove(`r${(i * 7) % 2000}`)
    for (let i = 0; i < 300; i += 2) index.remove(`n${i}`)
    assert.strictEqual(index.mode, "approximate")
    const removed = new Set(Array.from({ length: 2000 }, (_, i) => i).filter((i) => i % 3 !== 2))
    const alive = Array.from({ length: 2000 }, (_, i) => (i * 7) % 2000).filter((_, i) => !removed.has(i))
    assert.strictEqual(index.length, alive.length + 150)
    const gone = new Set([...removed].map((i) => `r${(i * 7) % 2000}`))
    for (let i = 0; i < 300; i += 2) gone.add(`n${i}`)
    for (let i = 1; i < 300; i += 2) assert.strictEqual(index.search(added[i]!, 1)[0]?.id, `n${i}`)
    for (const q of queries) for (const hit of index.search(q, 10)) assert.isFalse(gone.has(hit.id))
    for (const i of alive.slice(0, 200)) assert.strictEqual(index.search(rows[i]!, 1)[0]?.id, `r${i}`)
    assert.isAtLeast(recall(index, queries, 10), 0.95)
  })

  it("drops the graph below half the threshold and builds it again past it", () => {
    const { rows, index } = built(1000)
    for (let i = 0; i < 760; i++) index.remove(`r${i}`)
    assert.strictEqual(index.mode, "exact")
    for (const q of queries.slice(0, 5)) assert.deepStrictEqual(index.search(q, 10), index.searchExact(q, 10))
    rows.slice(0, 760).forEach((v, i) => index.add(`r${i}`, "a0", i, v))
    assert.strictEqual(index.mode, "building")
    while (index.buildStep(1000)) {}
    assert.strictEqual(index.search(rows[5]!, 1)[0]?.id, "r5")
    assert.isAtLeast(recall(index, queries, 10), 0.95)
  })
})
