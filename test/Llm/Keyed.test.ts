/** The keyed registry: one entry per key, dropped after an idle time-to-live unless held or kept, and bounded. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, TestClock } from "effect"
import * as Keyed from "../../src/Llm/Keyed.js"

/** An entry with state of its own, so a new one is told from an old one. */
interface Thing {
  readonly key: string
  readonly args: number
  readonly serial: number
  uses: number
  busy: boolean
}

/** A registry of `Thing`s that records what it made and what it released. */
const setup = (options: { readonly capacity?: number; readonly keep?: boolean } = {}) =>
  Effect.gen(function* () {
    const made: Array<string> = []
    const released: Array<string> = []
    const registry = yield* Keyed.make({
      name: "things",
      acquire: (key: string, args: number) =>
        Effect.acquireRelease(
          Effect.sync((): Thing => {
            made.push(key)
            return { key, args, serial: made.length, uses: 0, busy: false }
          }),
          (thing) => Effect.sync(() => released.push(thing.key))
        ),
      idleTimeToLive: "1 minute",
      capacity: options.capacity ?? 100,
      keep: options.keep === true ? (thing: Thing) => Effect.sync(() => thing.busy) : undefined
    })
    return { registry, made, released }
  })

const keysOf = (registry: Keyed.Keyed<number, Thing, never>) =>
  Effect.map(registry.entries, (entries) => entries.map(([key]) => key))

describe("Keyed", () => {
  it.scoped("keeps one entry per key, made with the arguments it was first asked with", () =>
    Effect.gen(function* () {
      const { registry, made } = yield* setup()
      const a = yield* registry.lookup("a", 1)
      const again = yield* registry.lookup("a", 2)
      const b = yield* registry.lookup("b", 3)
      assert.strictEqual(again, a)
      assert.strictEqual(again.args, 1)
      assert.notStrictEqual(b, a)
      assert.deepStrictEqual(made, ["a", "b"])
      assert.deepStrictEqual(yield* keysOf(registry), ["a", "b"])
    })
  )

  it.scoped("fibers asking for a new key at once share one entry", () =>
    Effect.gen(function* () {
      const { registry, made } = yield* setup()
      const all = yield* Effect.all(
        Array.from({ length: 20 }, (_, i) => registry.lookup("a", i)),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(made, ["a"])
      assert.isTrue(all.every((thing) => thing === all[0]))
    })
  )

  it.scoped("an idle entry is released after the time-to-live; the next one starts fresh", () =>
    Effect.gen(function* () {
      const { registry, made, released } = yield* setup()
      const first = yield* registry.lookup("a", 1)
      first.uses = 5
      yield* TestClock.adjust("59999 millis")
      assert.deepStrictEqual(released, [])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(released, ["a"])
      assert.deepStrictEqual(yield* keysOf(registry), [])
      const second = yield* registry.lookup("a", 2)
      assert.notStrictEqual(second, first)
      assert.deepStrictEqual([second.serial, second.uses, second.args], [2, 0, 2])
      assert.deepStrictEqual(made, ["a", "a"])
    })
  )

  it.scoped("each use starts the idle time over", () =>
    Effect.gen(function* () {
      const { registry, released } = yield* setup()
      yield* registry.lookup("a", 1)
      yield* TestClock.adjust("40 seconds")
      yield* registry.use("a", 1, (thing) => Effect.sync(() => thing.uses++))
      yield* TestClock.adjust("40 seconds")
      assert.deepStrictEqual(released, [])
      yield* TestClock.adjust("20 seconds")
      assert.deepStrictEqual(released, ["a"])
    })
  )

  it.scoped("an entry in use is not evicted; it goes a time-to-live after its last holder lets go", () =>
    Effect.gen(function* () {
      const { registry, released } = yield* setup()
      const holder = yield* Scope.make()
      const held = yield* Scope.extend(registry.get("a", 1), holder)
      const inUse = yield* Effect.fork(registry.use("b", 1, () => Effect.never))
      yield* TestClock.adjust("10 minutes")
      assert.deepStrictEqual(released, [])
      assert.strictEqual(yield* registry.lookup("a", 2), held)
      yield* Scope.close(holder, Exit.void)
      yield* Fiber.interrupt(inUse)
      yield* TestClock.adjust("59 seconds")
      assert.deepStrictEqual(released, [])
      yield* TestClock.adjust("1 second")
      assert.sameMembers(released, ["a", "b"])
    })
  )

  it.scoped("at the bound a new key evicts the least recently used idle entry", () =>
    Effect.gen(function* () {
      const { registry, released } = yield* setup({ capacity: 2 })
      yield* registry.lookup("a", 1)
      yield* TestClock.adjust("1 second")
      yield* registry.lookup("b", 1)
      yield* TestClock.adjust("1 second")
      yield* registry.lookup("a", 1)
      yield* registry.lookup("c", 1)
      assert.deepStrictEqual(released, ["b"])
      assert.deepStrictEqual(yield* keysOf(registry), ["a", "c"])
    })
  )

  it.scoped("at the bound with every entry held, a new key fails with RegistryFull until one is let go", () =>
    Effect.gen(function* () {
      const { registry, made } = yield* setup({ capacity: 2 })
      const holder = yield* Scope.make()
      yield* Scope.extend(registry.get("a", 1), holder)
      const b = yield* Effect.fork(registry.use("b", 1, () => Effect.never))
      yield* Effect.yieldNow()
      const refused = yield* Effect.flip(registry.lookup("c", 1))
      assert.instanceOf(refused, Keyed.RegistryFull)
      assert.deepStrictEqual([refused.registry, refused.capacity], ["things", 2])
      assert.deepStrictEqual(made, ["a", "b"])
      yield* Fiber.interrupt(b)
      yield* registry.lookup("c", 1)
      assert.deepStrictEqual(yield* keysOf(registry), ["a", "c"])
    })
  )

  it.scoped("an idle entry that keep keeps outlives the time-to-live and is not evicted for room", () =>
    Effect.gen(function* () {
      const { registry, released } = yield* setup({ capacity: 1, keep: true })
      const thing = yield* registry.lookup("a", 1)
      thing.busy = true
      yield* TestClock.adjust("10 minutes")
      assert.deepStrictEqual(released, [])
      assert.instanceOf(yield* Effect.flip(registry.lookup("b", 1)), Keyed.RegistryFull)
      thing.busy = false
      yield* TestClock.adjust("1 minute")
      yield* TestClock.adjust("15 seconds")
      assert.deepStrictEqual(released, ["a"])
      assert.notStrictEqual(yield* registry.lookup("a", 1), thing)
    })
  )

  it.scoped("an idle entry at rest is evicted for room even when keep is given", () =>
    Effect.gen(function* () {
      const { registry, released } = yield* setup({ capacity: 1, keep: true })
      yield* registry.lookup("a", 1)
      yield* registry.lookup("b", 1)
      assert.deepStrictEqual(released, ["a"])
    })
  )

  it.scoped("find holds an entry that exists and never makes one", () =>
    Effect.gen(function* () {
      const { registry, made, released } = yield* setup()
      assert.isTrue((yield* Effect.scoped(registry.find("a")))._tag === "None")
      assert.deepStrictEqual(made, [])
      const a = yield* registry.lookup("a", 1)
      const holder = yield* Scope.make()
      const found = yield* Scope.extend(registry.find("a"), holder)
      assert.deepStrictEqual(found._tag === "Some" ? found.value : undefined, a)
      yield* TestClock.adjust("5 minutes")
      assert.deepStrictEqual(released, [])
      yield* Scope.close(holder, Exit.void)
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(released, ["a"])
    })
  )

  it.scoped("invalidate drops an idle entry at once and a held one when it is let go", () =>
    Effect.gen(function* () {
      const { registry, released } = yield* setup()
      yield* registry.lookup("a", 1)
      yield* registry.invalidate("a")
      assert.deepStrictEqual(released, ["a"])
      const holder = yield* Scope.make()
      yield* Scope.extend(registry.get("b", 1), holder)
      yield* registry.invalidate("b")
      assert.deepStrictEqual(released, ["a"])
      yield* Scope.close(holder, Exit.void)
      assert.deepStrictEqual(released, ["a", "b"])
    })
  )

  it.effect("every entry is released with the registry's scope", () =>
    Effect.gen(function* () {
      const released = yield* Effect.scoped(
        Effect.gen(function* () {
          const { registry, released } = yield* setup()
          yield* registry.lookup("a", 1)
          yield* Effect.forkScoped(registry.use("b", 1, () => Effect.never))
          yield* Effect.yieldNow()
          return released
        })
      )
      assert.sameMembers(released, ["a", "b"])
    })
  )
})
