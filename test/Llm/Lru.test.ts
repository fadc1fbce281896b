import { assert, describe, it } from "@effect/vitest"
import { Lru } from "../../src/Llm/Lru.js"

const entry = (value: number, bytes = 1) => ({ value, bytes, expiresAt: Infinity })

/** Which of `keys` are held, in the order given. */
const held = (lru: Lru<number>, keys: ReadonlyArray<string>) => keys.filter((k) => lru.peek(k) !== undefined)

describe("Lru", () => {
  it("evicts the least recently used entry, a touched one last, across many evictions", () => {
    const lru = new Lru<number>(3, 1_000)
    for (const k of ["a", "b", "c"]) lru.set(k, entry(0))
    lru.get("a") // a is now the most recently used
    assert.strictEqual(lru.set("d", entry(0)).evicted, 1) // pushes out b
    assert.deepStrictEqual(held(lru, ["a", "b", "c", "d"]), ["a", "c", "d"])
    lru.get("c")
    lru.set("e", entry(0)) // pushes out a (c was touched after it)
    lru.set("f", entry(0)) // pushes out d
    assert.deepStrictEqual(held(lru, ["a", "b", "c", "d", "e", "f"]), ["c", "e", "f"])
    // an evicted key set again is new: it goes last, not where it once was
    lru.set("a", entry(0)) // pushes out c
    lru.set("g", entry(0)) // pushes out e
    assert.deepStrictEqual(held(lru, ["a", "c", "e", "f", "g"]), ["a", "f", "g"])
  })

  it("keeps the order over thousands of inserts and touches (the kept iterator against a model)", () => {
    const lru = new Lru<number>(50, 1_000_000)
    const model: Array<string> = [] // least recently used first
    let seed = 7
    // a linear congruential generator's high bits (its low bits cycle too soon to reach 200 keys)
    const random = (n: number) => Math.floor((seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 65_536) % n
    for (let i = 0; i < 5_000; i++) {
      if (model.length > 0 && random(3) === 0) {
        const k = model[random(model.length)]!
        lru.get(k)
        model.splice(model.indexOf(k), 1)
        model.push(k)
      } else {
        const k = `k${random(200)}`
        lru.set(k, entry(i))
        if (model.includes(k)) model.splice(model.indexOf(k), 1)
        model.push(k)
        if (model.length > 50) model.shift()
      }
    }
    assert.strictEqual(lru.size, 50)
    assert.strictEqual(model.length, 50)
    for (const k of model) assert.isDefined(lru.peek(k), k)
    // the next insert pushes out the model's oldest
    lru.set("new", entry(0))
    assert.isUndefined(lru.peek(model[0]!))
    assert.isDefined(lru.peek(model[1]!))
  })

  it("bounds the bytes, refuses an entry over them, and evicts again after clear", () => {
    const lru = new Lru<number>(10, 10)
    lru.set("a", entry(0, 4))
    lru.set("b", entry(0, 4))
    assert.deepStrictEqual(lru.set("c", entry(0, 4)), { stored: true, evicted: 1 })
    assert.deepStrictEqual([lru.size, lru.bytes], [2, 8])
    assert.deepStrictEqual(lru.set("huge", entry(0, 11)), { stored: false, evicted: 0 })
    lru.clear()
    assert.deepStrictEqual([lru.size, lru.bytes], [0, 0])
    for (const k of ["x", "y", "z"]) lru.set(k, entry(0, 4))
    assert.deepStrictEqual(held(lru, ["x", "y", "z"]), ["y", "z"])
  })
})
