/**
 * src/ against the dependency rule (Rule.ts, docs/architecture.md "The dependency rule"): no import the rule
 * forbids, no cycle between folders, and the doc's table says what the rule's data says.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { check, folderGraph, readTree } from "./Checker.js"
import { rule } from "./Rule.js"

/** The rows of the table under "## The dependency rule": layer number, folder, and the "may import" cell. */
const documentedRule = () => {
  const doc = readFileSync("docs/architecture.md", "utf8")
  const section = doc.split(/^## /m).find((s) => s.startsWith("The dependency rule")) ?? ""
  const rows = Array.from(section.matchAll(/^\| (\d+) +\| `(\w+)` +\| ([^|]+?) +\|/gm), (m) => ({
    layer: Number(m[1]),
    folder: m[2]!,
    imports: m[3]!
  }))
  const layers: Array<Array<string>> = []
  for (const row of rows) (layers[row.layer - 1] ??= []).push(row.folder)
  const only = Object.fromEntries(
    rows.flatMap((r) =>
      r.imports.startsWith("only ") ? [[r.folder, Array.from(r.imports.matchAll(/`(\w+)`/g), (m) => m[1]!)]] : []
    )
  )
  const cells = new Set(rows.filter((r) => !r.imports.startsWith("only ")).map((r) => r.imports))
  return { layers, only, cells }
}

describe("the dependency rule", () => {
  it("src/ follows it: every import allowed, no cycle between folders", () => {
    assert.deepStrictEqual(check(readTree("src"), rule), [])
  })

  it("sees the imports src/ has (the check is not passing on an empty graph)", () => {
    const graph = folderGraph(readTree("src"), rule)
    const edges = [...graph].flatMap(([from, to]) => [...to].map((t) => `${from} -> ${t}`))
    for (const edge of ["Ollama -> Domain", "Llm -> Ollama", "Agent -> Store", "Http -> Lifecycle", "main -> Cli"]) {
      assert.include(edges, edge)
    }
    assert.deepStrictEqual([...graph.keys()].sort(), rule.layers.flat().sort())
  })

  it("docs/architecture.md states the same layers and exceptions as the rule's data", () => {
    const documented = documentedRule()
    assert.deepStrictEqual(documented.layers, rule.layers)
    assert.deepStrictEqual(documented.only, rule.only)
    assert.deepStrictEqual([...documented.cells].sort(), ["every lower layer", "nothing"])
  })
})
