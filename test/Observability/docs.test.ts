import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { all, catalog } from "../../src/Observability/Metrics.js"

interface Row {
  readonly name: string
  readonly kind: string
  readonly labels: ReadonlyArray<string>
}

/** Table rows whose first cell is a `sluice_` metric name in backticks. */
const documented = (): ReadonlyArray<Row> =>
  readFileSync(new URL("../../docs/metrics.md", import.meta.url), "utf8")
    .split("\n")
    .flatMap((line) => {
      const cells = line.split("|").map((c) => c.trim())
      const name = /^`(sluice_[a-z0-9_]+)`$/.exec(cells[1] ?? "")?.[1]
      if (name === undefined) return []
      const labels = cells[3] === "-" ? [] : (cells[3] ?? "").split(",").map((l) => l.trim())
      return [{ name, kind: cells[2] ?? "", labels }]
    })

describe("docs/metrics.md", () => {
  it("documents every declared metric, and declares every documented one", () => {
    const docs = documented().map((r) => r.name)
    assert.deepStrictEqual(
      docs.filter((n) => !all.includes(n)),
      [],
      "documented but not declared"
    )
    assert.deepStrictEqual(
      all.filter((n) => !docs.includes(n)),
      [],
      "declared but not documented"
    )
    assert.strictEqual(new Set(docs).size, docs.length, "a metric is documented twice")
  })

  it("gives each metric its declared type and labels", () => {
    for (const row of documented()) {
      const declared = catalog.find((d) => d.name === row.name)!
      assert.strictEqual(row.kind, declared.kind, row.name)
      assert.deepStrictEqual(row.labels, declared.labels, row.name)
    }
  })

  it("declares at least 40 metrics, all prefixed sluice_, counters ending in _total", () => {
    assert.isAtLeast(all.length, 40)
    for (const d of catalog) {
      assert.match(d.name, /^sluice_[a-z0-9_]+$/)
      if (d.kind === "counter") assert.match(d.name, /_total$/, d.name)
      else assert.notMatch(d.name, /_total$/, d.name)
    }
  })
})
