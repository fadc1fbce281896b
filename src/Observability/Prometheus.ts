/**
 * Effect's metric registry rendered as Prometheus text format 0.0.4, for `GET /metrics`.
 *
 * Why render the registry directly rather than use @effect/opentelemetry's Prometheus route:
 * - That route needs `@opentelemetry/exporter-prometheus` and the OTel metrics SDK running beside Effect's
 *   registry; the exporter is not a dependency, and the SDK would copy every update into a second store.
 * - Effect's registry already holds every value; `Metric.snapshot` plus this ~100-line renderer gives exact
 *   names (no `otel_scope_*` labels, no unit suffix rewriting), counters typed as counters, and no extra
 *   process-wide state. OTLP metrics export, if ever wanted, can still be added with `OtlpMetrics`.
 *
 * Mapping: an incremental counter is a `counter` (a non-incremental one is a `gauge`, as it may go down); a
 * gauge a `gauge`; a histogram `_bucket{le}` (cumulative, ending with `+Inf`), `_sum` and `_count`; a frequency a
 * `counter` with a `key` label per word; a summary `{quantile}`, `_sum` and `_count`. Series are grouped by name
 * with one HELP and TYPE each, sorted by name then labels, so the output is stable.
 */
import type { MetricLabel, MetricPair } from "effect"
import { Effect, Metric, MetricKeyType, MetricState, Option } from "effect"
import * as Metrics from "./Metrics.js"
import * as NodeMetrics from "./NodeMetrics.js"

/** The content type of the text format. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

type Type = "counter" | "gauge" | "histogram" | "summary" | "untyped"

interface Family {
  readonly name: string
  type: Type
  help: string | undefined
  readonly lines: Array<readonly [sortKey: string, text: string]>
}

/** Metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
export const metricName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[a-zA-Z_:]/.test(cleaned) ? cleaned : `_${cleaned}`
}

/** Label names: `[a-zA-Z_][a-zA-Z0-9_]*`. */
export const labelName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[a-zA-Z_]/.test(cleaned) ? cleaned : `_${cleaned}`
}

/** A label value with `\`, `"` and newlines escaped. */
export const escapeValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

const escapeHelp = (help: string): string => help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/** A sample value: integers and floats as JavaScript prints them, `+Inf`, `-Inf`, `NaN`. */
export const formatValue = (n: number | bigint): string => {
  if (typeof n === "bigint") return n.toString()
  if (Number.isNaN(n)) return "NaN"
  if (n === Infinity) return "+Inf"
  if (n === -Infinity) return "-Inf"
  return String(n)
}

const labelText = (labels: ReadonlyArray<readonly [string, string]>): string => {
  const byName = new Map<string, string>()
  for (const [k, v] of labels) byName.set(labelName(k), v)
  if (byName.size === 0) return ""
  return `{${Array.from(byName, ([k, v]) => `${k}="${escapeValue(v)}"`).join(",")}}`
}

const pairsOf = (tags: ReadonlyArray<MetricLabel.MetricLabel>) => tags.map((t) => [t.key, t.value] as const)

const typeOf = (keyType: unknown): Type => {
  if (MetricKeyType.isCounterKey(keyType)) return keyType.incremental ? "counter" : "gauge"
  if (MetricKeyType.isGaugeKey(keyType)) return "gauge"
  if (MetricKeyType.isHistogramKey(keyType)) return "histogram"
  if (MetricKeyType.isFrequencyKey(keyType)) return "counter"
  if (MetricKeyType.isSummaryKey(keyType)) return "summary"
  return "untyped"
}

/** The sample lines of one metric pair, as [sort key, line]. */
const samples = (name: string, pair: MetricPair.MetricPair.Untyped): Array<readonly [string, string]> => {
  const tags = pairsOf(pair.metricKey.tags)
  const base = labelText(tags)
  const line = (suffix: string, extra: ReadonlyArray<readonly [string, string]>, value: number | bigint, order = "") =>
    [`${base}${order}`, `${name}${suffix}${labelText([...tags, ...extra])} ${formatValue(value)}`] as const
  const state = pair.metricState
  if (MetricState.isCounterState(state)) return [line("", [], state.count)]
  if (MetricState.isGaugeState(state)) return [line("", [], state.value)]
  if (MetricState.isHistogramState(state)) {
    const finite = state.buckets.filter(([le]) => Number.isFinite(le))
    return [
      ...finite.map(([le, n], i) => line("_bucket", [["le", formatValue(le)]], n, `\u0000${String(i).padStart(4)}`)),
      line("_bucket", [["le", "+Inf"]], state.count, "\u0000~~~~"),
      line("_sum", [], state.sum, "\u0001"),
      line("_count", [], state.count, "\u0002")
    ]
  }
  if (MetricState.isFrequencyState(state)) {
    return Array.from(state.occurrences, ([word, n]) => line("", [["key", word]], n, word))
  }
  if (MetricState.isSummaryState(state)) {
    const quantiles = state.quantiles.flatMap(([q, v]) =>
      Option.isSome(v) ? [line("", [["quantile", formatValue(q)]], v.value, `\u0000${q}`)] : []
    )
    return [...quantiles, line("_sum", [], state.sum, "\u0001"), line("_count", [], state.count, "\u0002")]
  }
  return []
}

/**
 * Renders a registry snapshot as Prometheus text (ends with a newline). Metrics in `declared` that have no sample
 * yet (a counter whose event never happened, a labelled gauge never set) still get their HELP and TYPE lines, so
 * every declared metric is visible in `/metrics` from the start, and dashboards and alert rules can rely on them.
 */
export const render = (
  pairs: Iterable<MetricPair.MetricPair.Untyped>,
  declared: ReadonlyArray<{ readonly name: string; readonly kind: string; readonly help: string }> = []
): string => {
  const families = new Map<string, Family>()
  for (const d of declared) {
    families.set(d.name, { name: d.name, type: d.kind as Family["type"], help: d.help, lines: [] })
  }
  for (const pair of pairs) {
    const name = metricName(pair.metricKey.name)
    let family = families.get(name)
    if (family === undefined) {
      family = { name, type: typeOf(pair.metricKey.keyType), help: undefined, lines: [] }
      families.set(name, family)
    }
    family.help ??= Option.getOrUndefined(pair.metricKey.description)
    family.lines.push(...samples(name, pair))
  }
  const out: Array<string> = []
  for (const family of Array.from(families.values()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (family.help !== undefined) out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`)
    out.push(`# TYPE ${family.name} ${family.type}`)
    const sorted = family.lines.slice().sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    for (const [, text] of sorted) out.push(text)
  }
  return out.length === 0 ? "" : out.join("\n") + "\n"
}

/** Every metric in Effect's registry as Prometheus text, then the stock Node process metrics (`NodeMetrics.ts`). */
export const scrape: Effect.Effect<string> = Effect.zipWith(
  Effect.map(Metric.snapshot, (pairs) => render(pairs, Metrics.catalog)),
  NodeMetrics.scrape,
  (sluice, node) => sluice + node
)
