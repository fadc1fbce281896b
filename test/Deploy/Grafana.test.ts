/**
 * deploy/grafana/sluice.json works both ways Grafana loads a dashboard, checked on the file (Grafana itself is not
 * a Debian package, so these tests do what it does to the file):
 * - UI import ("Import dashboard"): Grafana asks for each `__inputs` entry and replaces `${DS_PROMETHEUS}`
 *   everywhere in the text with the chosen datasource's uid;
 * - file provisioning (deploy/grafana/provisioning, compose): no replacement happens, so `${DS_PROMETHEUS}` must be
 *   a dashboard variable: a `datasource` variable of that name, which starts on the default Prometheus datasource.
 * And every metric the panels, the variables and the alert rules read is one Sluice exports (or, named below, one
 * Prometheus or node_exporter does).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import * as Metrics from "../../src/Observability/Metrics.js"
import * as NodeMetrics from "../../src/Observability/NodeMetrics.js"
import { dashboardExprs, metricNames, ruleExprs } from "./promql.js"

const root = process.cwd()
const text = readFileSync("deploy/grafana/sluice.json", "utf8")

interface Datasource {
  readonly type: string
  readonly uid: string
}
interface Panel {
  readonly id: number
  readonly type: string
  readonly datasource?: Datasource | null
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number }
  readonly targets?: ReadonlyArray<{ readonly datasource?: Datasource; readonly expr: string }>
}
interface Variable {
  readonly name: string
  readonly type: string
  readonly query?: unknown
  readonly datasource?: Datasource
}
interface Dashboard {
  readonly __inputs: ReadonlyArray<{ readonly name: string; readonly type: string; readonly pluginId: string }>
  readonly __requires: ReadonlyArray<{ readonly type: string; readonly id: string }>
  readonly panels: ReadonlyArray<Panel>
  readonly templating: { readonly list: ReadonlyArray<Variable> }
}

const parse = (json: string) => JSON.parse(json) as Dashboard

/** Every datasource reference: panels (rows have none), their targets, and query variables. */
const references = (d: Dashboard): ReadonlyArray<readonly [string, Datasource | null | undefined]> => [
  ...d.panels
    .filter((p) => p.type !== "row")
    .flatMap((p) => [
      [`panel ${p.id}`, p.datasource] as const,
      ...(p.targets ?? []).map((t, i) => [`panel ${p.id} target ${i}`, t.datasource] as const)
    ]),
  ...d.templating.list.filter((v) => v.type === "query").map((v) => [`variable ${v.name}`, v.datasource] as const)
]

/** Grafana's own variables, usable without being defined. */
const builtins = new Set(["__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__all"])

describe("deploy/grafana/sluice.json", () => {
  const dashboard = parse(text)

  it("asks for its Prometheus datasource on import (__inputs), and uses it everywhere", () => {
    assert.deepStrictEqual(
      dashboard.__inputs.map((i) => [i.name, i.type, i.pluginId]),
      [["DS_PROMETHEUS", "datasource", "prometheus"]]
    )
    assert.isTrue(dashboard.__requires.some((r) => r.type === "datasource" && r.id === "prometheus"))
    const panelTypes = new Set(dashboard.panels.map((p) => p.type).filter((t) => t !== "row"))
    for (const t of panelTypes)
      assert.isTrue(
        dashboard.__requires.some((r) => r.type === "panel" && r.id === t),
        t
      )
    const refs = references(dashboard)
    assert.isAbove(refs.length, 50)
    for (const [where, ds] of refs) assert.deepStrictEqual(ds, { type: "prometheus", uid: "${DS_PROMETHEUS}" }, where)
    assert.notMatch(text, /"uid": "prometheus"/, "no fixed datasource uid left")
  })

  it("UI import: replacing ${DS_PROMETHEUS} with the chosen uid leaves every reference on that datasource", () => {
    const imported = parse(text.replaceAll("${DS_PROMETHEUS}", "chosen-uid"))
    assert.notInclude(JSON.stringify(imported), "${DS_")
    for (const [where, ds] of references(imported)) assert.strictEqual(ds?.uid, "chosen-uid", where)
  })

  it("provisioning: ${DS_PROMETHEUS} is a datasource variable, and every variable used is defined", () => {
    const variable = dashboard.templating.list.find((v) => v.name === "DS_PROMETHEUS")
    assert.strictEqual(variable?.type, "datasource")
    assert.strictEqual(variable?.query, "prometheus")
    assert.strictEqual(dashboard.templating.list[0], variable, "defined before the variables whose queries use it")
    const defined = new Set(dashboard.templating.list.map((v) => v.name))
    const used = Array.from(text.matchAll(/\$\{?(\w+)/g), (m) => m[1]!).filter((n) => !builtins.has(n))
    assert.deepStrictEqual(
      used.filter((n) => !defined.has(n)),
      [],
      "variables used but not defined"
    )
    // the datasource variable starts on the default datasource: compose provisions Prometheus as the default
    const provisioned = readFileSync("deploy/grafana/provisioning/datasources/prometheus.yml", "utf8")
    assert.match(provisioned, /type: prometheus/)
    assert.match(provisioned, /isDefault: true/)
  })

  it("panels have unique ids and do not overlap", () => {
    const ids = dashboard.panels.map((p) => p.id)
    assert.strictEqual(new Set(ids).size, ids.length)
    const boxes = dashboard.panels.map((p) => p.gridPos)
    boxes.forEach((a, i) =>
      boxes.slice(i + 1).forEach((b, j) => {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
        assert.isFalse(overlap, `panels ${ids[i]} and ${ids[i + j + 1]} overlap`)
      })
    )
  })
})

/** Metrics the rules read that other exporters provide. */
const external: Record<string, string> = {
  up: "Prometheus' own, per target",
  node_filesystem_avail_bytes: "node_exporter (SluiceHostDiskLow)",
  node_filesystem_size_bytes: "node_exporter (SluiceHostDiskLow)"
}

describe("metric names in deploy/", () => {
  it.effect("every metric a dashboard panel, variable or alert rule reads is one Sluice exports", () =>
    Effect.gen(function* () {
      const node = (yield* NodeMetrics.families).map((f) => [f.name, f.type] as const)
      const exported = new Map([...Metrics.catalog.map((d) => [d.name, d.kind] as const), ...node])
      const known = (name: string) => {
        const base = name.replace(/_(bucket|sum|count)$/, "")
        return exported.has(name) || (base !== name && exported.get(base) === "histogram") || name in external
      }
      const exprs = [...dashboardExprs(root), ...ruleExprs(root)]
      assert.isAbove(exprs.length, 70)
      const names = new Set(exprs.flatMap(metricNames))
      assert.deepStrictEqual(
        Array.from(names).filter((n) => !known(n)),
        [],
        "read in deploy/ but not exported"
      )
      assert.isTrue(names.has("process_open_fds") && names.has("nodejs_gc_duration_seconds_sum"), "stock names used")
    })
  )

  it("every alert has a summary, a description, and a runbook_url whose section exists in docs/runbooks.md", () => {
    const rules = readFileSync("deploy/prometheus/alerts.yml", "utf8")
      .split(/\n(?=[ ]+- alert: )/)
      .slice(1)
    const runbooks = readFileSync("docs/runbooks.md", "utf8")
    const anchors = new Set(Array.from(runbooks.matchAll(/^## (\S+)$/gm), (m) => m[1]!.toLowerCase()))
    assert.isAbove(rules.length, 15)
    for (const rule of rules) {
      const name = /- alert: (\w+)/.exec(rule)![1]!
      assert.match(rule, /\n\s+summary: "[^"]+"/, `${name}: summary`)
      assert.match(rule, /\n\s+description: "[^"]+"/, `${name}: description`)
      const url = /\n\s+runbook_url: "docs\/runbooks\.md#([a-z0-9-]+)"/.exec(rule)?.[1]
      assert.strictEqual(url, name.toLowerCase(), `${name}: runbook_url`)
      assert.isTrue(anchors.has(url!), `docs/runbooks.md has no section ${name}`)
      const section = runbooks.slice(runbooks.indexOf(`## ${name}\n`)).split(/\n## /)[0]!
      for (const part of ["**Means**", "**First checks**", "**Fixes**"]) assert.include(section, part, name)
    }
    assert.strictEqual(anchors.size, rules.length, "a runbook section without an alert")
  })
})
