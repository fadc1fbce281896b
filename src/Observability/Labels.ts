/**
 * Label values kept bounded, and tagged metrics made once per label set.
 *
 * - A label whose values come from callers (the model name) admits its first `cap` distinct values and maps
 *   the rest to "other", so a client sending random model names cannot grow the series without bound.
 * - Values are cut to 128 characters.
 * - `tag` remembers the tagged metric per label set: tagging allocates a new key and the registry hashes it, which
 *   is worth doing once, not on every update.
 */
import { Metric, MetricLabel } from "effect"
import { normalizeName } from "../Domain/ModelName.js"

const maxLength = 128
const maxTaggedPerMetric = 10_000

/** A label value source that admits `cap` distinct values and calls the rest "other". */
export const bounded = (cap: number, normalize: (value: string) => string = (v) => v) => {
  const seen = new Set<string>()
  // raw value -> label, so a value seen before costs one lookup (this runs for every metric update on the hot path)
  const known = new Map<string, string>()
  return (value: string): string => {
    const label = known.get(value)
    if (label !== undefined) return label
    const v = normalize(value).slice(0, maxLength)
    if (seen.has(v)) {
      if (known.size < cap * 4) known.set(value, v)
      return v
    }
    if (seen.size >= cap) return "other"
    seen.add(v)
    if (known.size < cap * 4) known.set(value, v)
    return v
  }
}

/** Model names, normalised as Ollama compares them (`llama3.2` is `llama3.2:latest`), at most 100 of them. */
export const model = bounded(100, (m) => (m.length === 0 ? "none" : normalizeName(m)))

/** Backend origins (configured, so already bounded; capped anyway). */
export const backend = bounded(64)

/** Error kinds are tags of the engine's error family; anything else is "other". */
export const kind = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag.slice(0, maxLength)
    : "unknown"

/** How a fallback answered, without the alternate model's name: "stale", "default" or "alternate". */
export const strategy = (served: string): string => (served.startsWith("alternate") ? "alternate" : served)

const tagged = new WeakMap<object, Map<string, unknown>>()

/** `metric` with these labels (data-first tagging: reference pitfall 8), made once per distinct label set. */
export const tag = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  labels: Readonly<Record<string, string>>
): Metric.Metric<Type, In, Out> => {
  // one string concatenation per update (this runs for every metric update on the hot path)
  let id = ""
  for (const k in labels) id += `${k}\u0000${labels[k]}\u0001`
  let byId = tagged.get(metric)
  if (byId === undefined) {
    byId = new Map()
    tagged.set(metric, byId)
  }
  const known = byId.get(id) as Metric.Metric<Type, In, Out> | undefined
  if (known !== undefined) return known
  const made = Metric.taggedWithLabels(
    metric,
    Object.entries(labels).map(([k, v]) => MetricLabel.make(k, v.slice(0, maxLength)))
  )
  if (byId.size < maxTaggedPerMetric) byId.set(id, made)
  return made
}
