/** The in-memory index alone: exact top-k against a sort, filters, removal with shrinking, agent bookkeeping. */
import { assert, describe, it } from "@effect/vitest"
import { VectorIndex } from "../../src/Agent/VectorIndex.js"

/** Deterministic pseudo-random numbers (mulberry32). */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const vectors = (n: number, dim: number, next = random(7)) =>
  Array.from({ length: n }, () => Array.from({ length: dim }, () => next() * 2 - 1))
const cosine = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => {
  const dot = a.reduce((s, x, i) => s + x * b[i]!, 0)
  const norm = (v: ReadonlyArray<number>) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))
  return dot / (norm(a) * norm(b))
}

describe("VectorIndex", () => {
  it("finds the same top k as sorting every cosine, with agent and time filters", () => {
    const dim = 37
    const rows = vectors(500, dim)
    const index = new VectorIndex(dim)
    rows.forEach((v, i) => index.add(`r${i}`, `a${i % 3}`, i, v))
    for (const query of vectors(20, dim, random(99))) {
      const expected = rows
        .map((v, i) => ({ id: `r${i}`, score: cosine(v, query), i }))
        .filter((r) => r.i % 3 === 1 && r.i >= 100 && r.i <= 400)
        .sort((a, b) => b.score - a.score)
        .slice(0, 7)
      const hits = index.search(query, 7, { agent: "a1", since: 100, until: 400 })
      assert.deepStrictEqual(
        hits.map((h) => h.id),
        expected.map((e) => e.id)
      )
      hits.forEach((h, i) => assert.closeTo(h.score, expected[i]!.score, 1e-5))
    }
  })

  it("removes rows (the last one moves into the hole), shrinks its storage and forgets agents without rows", () => {
    const dim = 4
    const rows = vectors(1000, dim)
    const index = new VectorIndex(dim)
    rows.forEach((v, i) => index.add(`r${i}`, i < 10 ? "few" : "many", i, v))
    for (let i = 0; i < 1000; i++) {
      const id = (i * 7) % 1000 // a permutation: removals hit the middle, the end and the start
      if (id < 995) assert.isTrue(index.remove(`r${id}`))
    }
    assert.strictEqual(index.length, 5)
    assert.deepStrictEqual(index.agentsPresent(), ["many"])
    assert.strictEqual(index.count("few"), 0)
    assert.isFalse(index.remove("r0"))
    for (let i = 995; i < 1000; i++) {
      const [hit] = index.search(rows[i]!, 1)
      assert.strictEqual(hit?.id, `r${i}`)
      assert.closeTo(hit!.score, 1, 1e-6)
    }
    assert.isAtMost((index as unknown as { agents: Int32Array }).agents.length, 32)
  })

  it("replaces a row added again under the same id; a zero vector scores 0", () => {
    const index = new VectorIndex(2)
    index.add("x", "a", 0, [1, 0])
    index.add("x", "b", 5, [0, 3])
    index.add("z", "a", 1, [0, 0])
    assert.strictEqual(index.length, 2)
    assert.deepStrictEqual(index.search([0, 1], 5), [
      { id: "x", score: 1 },
      { id: "z", score: 0 }
    ])
    assert.deepStrictEqual(index.search([0, 1], 5, { minScore: 0.5, agent: "b", since: 5, until: 5 }), [
      { id: "x", score: 1 }
    ])
    assert.throws(() => index.search([1, 2, 3], 1))
  })
})
