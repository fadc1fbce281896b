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

/** Per metric: a tree keyed by label name, then value, at each level in the call's order; `made` at its leaves. */
interface Node {
  readonly next: Map<string, Map<string, Node>>
  made?: unknown
}

const tagged = new WeakMap<object, { readonly root: Node; size: number }>()

/**
 * `metric` with these labels (data-first tagging: reference pitfall 8), made once per distinct label set. The
 * lookup walks a tree of Maps by the label names and values themselves (this runs for every metric update on the
 * hot path; the names are constants and the values come from the bounded sources above, so every lookup hits a
 * string whose hash V8 already holds), with no string built per update.
 */
export const tag = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  labels: Readonly<Record<string, string>>
): Metric.Metric<Type, In, Out> => {
  let tree = tagged.get(metric)
  if (tree === undefined) {
    tree = { root: { next: new Map() }, size: 0 }
    tagged.set(metric, tree)
  }
  let node = tree.root
  for (const k in labels) {
    const v = labels[k]!
    let byValue = node.next.get(k)
    if (byValue === undefined) {
      byValue = new Map()
      node.next.set(k, byValue)
    }
    let child = byValue.get(v)
    if (child === undefined) {
      child = { next: new Map() }
      if (tree.size < maxTaggedPerMetric) byValue.set(v, child)
    }
    node = child
  }
  if (node.made !== undefined) return node.made as Metric.Metric<Type, In, Out>
  const made = Metric.taggedWithLabels(
    metric,
    Object.entries(labels).map(([k, v]) => MetricLabel.make(k, v.slice(0, maxLength)))
  )
  if (tree.size < maxTaggedPerMetric) {
    node.made = made
    tree.size++
  }
  return made
}
