import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, MetricBoundaries } from "effect"
import * as Prometheus from "../../src/Observability/Prometheus.js"

/** The rendered lines of the metrics whose names start with `prefix`. */
const scrape = (prefix: string) =>
  Effect.map(Metric.snapshot, (pairs) =>
    Prometheus.render(pairs.filter((p) => p.metricKey.name.startsWith(prefix)))
      .split("\n")
      .filter((l) => l.length > 0)
  )

describe("Prometheus text rendering", () => {
  it.effect("an incremental counter is a counter, with HELP, TYPE and one line per label set", () =>
    Effect.gen(function* () {
      const c = Metric.counter("t1_calls_total", { description: "calls\nmade \\ here", incremental: true })
      yield* Metric.incrementBy(Metric.tagged(c, "route", "/b"), 2)
      yield* Metric.increment(Metric.tagged(c, "route", "/a"))
      yield* Metric.increment(Metric.tagged(c, "route", "/a"))
      assert.deepStrictEqual(yield* scrape("t1_"), [
        "# HELP t1_calls_total calls\\nmade \\\\ here",
        "# TYPE t1_calls_total counter",
        't1_calls_total{route="/a"} 2',
        't1_calls_total{route="/b"} 2'
      ])
    })
  )

  it.effect("a counter without incremental is a gauge (it may go down)", () =>
    Effect.gen(function* () {
      const c = Metric.counter("t2_level")
      yield* Metric.incrementBy(c, 5)
      yield* Metric.incrementBy(c, -2)
      assert.deepStrictEqual(yield* scrape("t2_"), ["# TYPE t2_level gauge", "t2_level 3"])
    })
  )

  it.effect("gauges hold the last value; floats, Infinity and NaN are written as Prometheus expects", () =>
    Effect.gen(function* () {
      const g = Metric.gauge("t3_value", { description: "a value" })
      yield* Metric.set(Metric.tagged(g, "k", "a"), 1.5)
      yield* Metric.set(Metric.tagged(g, "k", "a"), 0.25)
      yield* Metric.set(Metric.tagged(g, "k", "b"), Infinity)
      yield* Metric.set(Metric.tagged(g, "k", "c"), NaN)
      assert.deepStrictEqual((yield* scrape("t3_")).slice(2), [
        't3_value{k="a"} 0.25',
        't3_value{k="b"} +Inf',
        't3_value{k="c"} NaN'
      ])
      assert.strictEqual(Prometheus.formatValue(-Infinity), "-Inf")
      assert.strictEqual(Prometheus.formatValue(BigInt(7)), "7")
    })
  )

  it.effect("histogram buckets are cumulative, end with +Inf, and come with _sum and _count", () =>
    Effect.gen(function* () {
      const h = Metric.histogram("t4_seconds", MetricBoundaries.fromIterable([0.1, 1, 10]), "durations")
      for (const v of [0.05, 0.1, 0.5, 2, 20]) yield* Metric.update(Metric.tagged(h, "op", "x"), v)
      assert.deepStrictEqual(yield* scrape("t4_"), [
        "# HELP t4_seconds durations",
        "# TYPE t4_seconds histogram",
        't4_seconds_bucket{op="x",le="0.1"} 2',
        't4_seconds_bucket{op="x",le="1"} 3',
        't4_seconds_bucket{op="x",le="10"} 4',
        't4_seconds_bucket{op="x",le="+Inf"} 5',
        't4_seconds_sum{op="x"} 22.65',
        't4_seconds_count{op="x"} 5'
      ])
    })
  )

  it.effect("label values escape backslash, double quote and newline; names are sanitised", () =>
    Effect.gen(function* () {
      const c = Metric.counter("t5-odd.name_total", { incremental: true })
      yield* Metric.increment(Metric.tagged(c, "bad-label", 'a"b\\c\nd'))
      assert.deepStrictEqual(yield* scrape("t5"), [
        "# TYPE t5_odd_name_total counter",
        't5_odd_name_total{bad_label="a\\"b\\\\c\\nd"} 1'
      ])
      assert.strictEqual(Prometheus.metricName("1abc"), "_1abc")
    })
  )

  it.effect("frequencies render as counters per key; summaries as quantiles, _sum and _count", () =>
    Effect.gen(function* () {
      const f = Metric.frequency("t6_words", { description: "words" })
      yield* Metric.update(f, "b")
      yield* Metric.update(f, "a")
      yield* Metric.update(f, "b")
      const s = Metric.summary({ name: "t6_sizes", maxAge: "1 minute", maxSize: 10, error: 0, quantiles: [0.5] })
      yield* Metric.update(s, 4)
      const lines = yield* scrape("t6_")
      assert.includeMembers(lines, [
        "# TYPE t6_words counter",
        't6_words{key="a"} 1',
        't6_words{key="b"} 2',
        "# TYPE t6_sizes summary",
        "t6_sizes_sum 4",
        "t6_sizes_count 1"
      ])
      assert.isTrue(lines.some((l) => l.startsWith('t6_sizes{quantile="0.5"}')))
    })
  )

  it("an empty registry renders as empty text", () => {
    assert.strictEqual(Prometheus.render([]), "")
  })
})
