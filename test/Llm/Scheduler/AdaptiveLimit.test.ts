/** The adaptive limit as a pure state machine, fed with samples (no time), plus its small Effect wrapper. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as AdaptiveLimit from "../../../src/Llm/Scheduler/AdaptiveLimit.js"
import type { Options, Sample, State } from "../../../src/Llm/Scheduler/AdaptiveLimit.js"

const ok = (latencyMs: number, inFlight: number, work?: number): Sample => ({
  latencyMs,
  outcome: "ok",
  inFlight,
  work
})
const overload: Sample = { latencyMs: 0, outcome: "overload", inFlight: 1 }

/** A limit fed by hand: `feed` applies samples, `limit` reads the effective limit. */
const machine = (options: Options) => {
  const resolved = AdaptiveLimit.resolve(options)
  let state: State = AdaptiveLimit.initial(resolved)
  const limit = () => AdaptiveLimit.limitOf(resolved, state)
  const feed = (...samples: ReadonlyArray<Sample>) => {
    for (const sample of samples) state = AdaptiveLimit.update(resolved, state, sample)
    return limit()
  }
  /** `windows` full windows of samples of `latencyMs`, each started with the limit in flight (fully used). */
  const used = (windows: number, latencyMs: number) => {
    for (let w = 0; w < windows; w++) feed(...Array.from({ length: resolved.window }, () => ok(latencyMs, limit())))
    return limit()
  }
  return { feed, limit, used, state: () => state }
}

/**
 * A backend with `slots` slots under saturated demand: each round runs `limit` calls at once, each taking
 * base x max(1, inFlight / slots) (the excess queues inside the backend). Returns the learned limit after each
 * round (`state.limit`: the effective limit is half of it during the rare baseline probes).
 */
const simulate = (m: ReturnType<typeof machine>, rounds: number, slots: number, base: (round: number) => number) =>
  Array.from({ length: rounds }, (_, round) => {
    const n = m.limit()
    const latency = base(round) * Math.max(1, n / slots)
    m.feed(...Array.from({ length: n }, () => ok(latency, n)))
    return Math.floor(m.state().limit)
  })

const within = (values: ReadonlyArray<number>, low: number, high: number) => {
  for (const v of values) assert.isTrue(v >= low && v <= high, `${v} not in [${low}, ${high}]: ${values.join(",")}`)
}

describe("AdaptiveLimit", () => {
  it("starts at `initial` and grows by one per window while latency holds and the limit is used", () => {
    const m = machine({ initial: 4, window: 10, probeEvery: 0 })
    assert.strictEqual(m.limit(), 4)
    assert.strictEqual(m.feed(...Array.from({ length: 9 }, () => ok(100, 4))), 4)
    assert.strictEqual(m.feed(ok(100, 4)), 5)
    assert.strictEqual(m.used(4, 110), 9)
  })

  it("does not grow while the limit is under-used", () => {
    const m = machine({ initial: 8, window: 10 })
    m.feed(...Array.from({ length: 50 }, () => ok(100, 2)))
    assert.strictEqual(m.limit(), 8)
  })

  it("shrinks by x0.9 when the window's latency passes tolerance x baseline", () => {
    const m = machine({ initial: 10, window: 10, probeEvery: 0 })
    assert.strictEqual(m.used(1, 100), 11)
    assert.strictEqual(m.used(1, 149), 12)
    assert.strictEqual(m.used(1, 200), 10) // 12 x 0.9 = 10.8
    assert.strictEqual(m.used(1, 200), 9) // 9.72
    assert.strictEqual(m.state().baseline, 100)
  })

  it("halves on an overload, once per round trip of the calls in flight", () => {
    const m = machine({ initial: 8 })
    assert.strictEqual(m.feed(overload), 4)
    assert.strictEqual(m.feed(overload, overload, overload), 4)
    m.feed(...Array.from({ length: 5 }, () => ok(100, 4)))
    assert.strictEqual(m.feed(overload), 2)
  })

  it("ignores 'ignore' samples", () => {
    const m = machine({ initial: 3, window: 1 })
    m.feed(...Array.from({ length: 20 }, () => ({ latencyMs: 1e6, outcome: "ignore" as const, inFlight: 3 })))
    assert.strictEqual(m.limit(), 3)
    assert.isUndefined(m.state().baseline)
  })

  it("clamps to [min, max]", () => {
    assert.strictEqual(machine({ initial: 1000 }).limit(), 256)
    const high = machine({ initial: 4, max: 6, window: 2 })
    assert.strictEqual(high.used(10, 100), 6)
    const low = machine({ initial: 16, min: 3 })
    for (let i = 0; i < 10; i++) low.feed(overload, ...Array.from({ length: 16 }, () => ok(100, 1)))
    assert.strictEqual(low.limit(), 3)
  })

  it("divides latency by work, so long answers at the same speed are no queueing", () => {
    const m = machine({ initial: 4, window: 10, probeEvery: 0 })
    for (let w = 0; w < 6; w++) {
      const tokens = w % 2 === 0 ? 10 : 200
      m.feed(...Array.from({ length: 10 }, (_, i) => ok(5 * (tokens + i), m.limit(), tokens + i)))
    }
    assert.strictEqual(m.limit(), 10)
  })

  it("converges near the knee of a backend with S = 4 slots, from below and from above", () => {
    const fromBelow = simulate(machine({ initial: 1 }), 400, 4, () => 100)
    within(fromBelow.slice(200), 4, 8)
    const fromAbove = simulate(machine({ initial: 40 }), 400, 4, () => 100)
    within(fromAbove.slice(200), 4, 8)
  })

  it("recovers after a transient overload", () => {
    const m = machine({ initial: 4 })
    simulate(m, 200, 4, () => 100)
    m.feed(overload)
    assert.isAtMost(m.limit(), 4)
    const recovered = simulate(m, 100, 4, () => 100)
    within(recovered.slice(50), 5, 8)
  })

  it("probes at half the limit after the first window, and deeper while it finds a hidden queue", () => {
    const m = machine({ initial: 40, window: 10 })
    m.used(1, 1000) // 40 in flight on 4 slots: 10x the real latency, taken for the baseline
    assert.strictEqual(m.limit(), 20)
    assert.isTrue(m.state().probing)
    simulate(m, 12, 4, () => 100)
    assert.strictEqual(m.state().baseline, 100)
    assert.isFalse(m.state().probing)
    assert.isTrue(m.limit() >= 4 && m.limit() <= 8, String(m.limit()))
  })

  it("a deeper probe takes half a window and puts the limit at tolerance x the slots it measured", () => {
    const m = machine({ initial: 4, window: 10 })
    const feed = (n: number, latencyMs: number, inFlight: number) =>
      m.feed(...Array.from({ length: n }, () => ok(latencyMs, inFlight)))
    assert.strictEqual(feed(10, 200, 4), 2) // 4 in flight on 2 slots: twice the real latency; the probe runs at 2
    assert.strictEqual(feed(10, 100, 2), 1) // half the latency at 2: a hidden queue, so probe deeper, at 1
    assert.strictEqual(feed(4, 100, 1), 1)
    assert.strictEqual(feed(1, 100, 1), 3) // no faster at 1: 2 x 100 / 100 = 2 slots, so 1.5 x 2
    assert.isFalse(m.state().probing)
    assert.strictEqual(m.state().baseline, 100)
  })

  it("a deeper probe that finds one slot leaves the limit at the level above it, then shrinks from there", () => {
    const m = machine({ initial: 4, window: 10 })
    m.feed(...Array.from({ length: 10 }, () => ok(400, 4)))
    m.feed(...Array.from({ length: 10 }, () => ok(200, 2)))
    assert.strictEqual(m.feed(...Array.from({ length: 5 }, () => ok(100, 1))), 2)
    assert.strictEqual(m.state().baseline, 100)
    assert.strictEqual(m.used(3, 200), 1) // 2 in flight on 1 slot: twice the baseline, x0.9 a window from 2.5
  })

  it("re-measures the baseline, so a backend that became slower is not starved", () => {
    const m = machine({ initial: 4, probeEvery: 5 })
    const limits = simulate(m, 600, 4, (round) => (round < 200 ? 100 : 300))
    within(limits.slice(400), 3, 8)
    const baseline = m.state().baseline!
    assert.isTrue(baseline >= 250 && baseline <= 350, String(baseline))
  })

  it.effect("make: a Ref-backed limit fed with samples", () =>
    Effect.gen(function* () {
      const limit = yield* AdaptiveLimit.make({ initial: 2, window: 1, probeEvery: 0 })
      assert.strictEqual(yield* limit.limit, 2)
      assert.strictEqual(yield* limit.sample(ok(100, 2)), 3)
      assert.strictEqual(yield* limit.sample(overload), 1)
      assert.strictEqual((yield* limit.state).baseline, 100)
    })
  )
})
