/**
 * The metric names a PromQL expression reads, for the deploy tests (no PromQL parser is a dependency; the rules and
 * the dashboard use plain PromQL, which these few rewrites cover): strings, label matchers, ranges, grouping
 * clauses and offsets are removed, then every identifier not called as a function and not a keyword is a metric.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"

const keywords = new Set(["and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"])

/** The metric names in one expression, as written (a histogram's `_bucket`, `_sum`, `_count` included). */
export const metricNames = (expr: string): ReadonlyArray<string> => {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "")
    .replace(/\boffset\s+-?\w+/g, "")
  return Array.from(bare.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g), (m) => m[1]!).filter(
    (name) => !keywords.has(name)
  )
}

/** Every `expr:` of the alert rules (block scalars included). */
export const ruleExprs = (root: string): ReadonlyArray<string> => {
  const lines = readFileSync(join(root, "deploy/prometheus/alerts.yml"), "utf8").split("\n")
  const exprs: Array<string> = []
  lines.forEach((line, i) => {
    const m = /^(\s*)expr: ?(.*)$/.exec(line)
    if (m === null) return
    if (m[2] !== "|") return void exprs.push(m[2]!)
    const body: Array<string> = []
    for (let j = i + 1; j < lines.length && (lines[j]!.trim() === "" || lines[j]!.search(/\S/) > m[1]!.length); j++) {
      body.push(lines[j]!)
    }
    exprs.push(body.join("\n"))
  })
  return exprs
}

/** Every target `expr` of the dashboard, and the metric of each `label_values(metric, label)` variable query. */
export const dashboardExprs = (root: string): ReadonlyArray<string> => {
  const text = readFileSync(join(root, "deploy/grafana/sluice.json"), "utf8")
  const dashboard = JSON.parse(text) as {
    panels: Array<{ targets?: Array<{ expr: string }> }>
  }
  const variables = Array.from(text.matchAll(/label_values\((\w+),/g), (m) => m[1]!)
  return [...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...variables]
}
