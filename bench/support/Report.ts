/**
 * One scenario's output: a Markdown report (machine, setup, tables, notes) printed on stdout and written to
 * bench/results/<scenario>.md, and the raw figures to bench/results/<scenario>.json.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { describe, load, machine } from "./Machine.js"

export const resultsDir = new URL("../results/", import.meta.url)

export interface Table {
  readonly title?: string
  readonly headers: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
}

export interface Report {
  readonly scenario: string
  readonly title: string
  /** Latency model, ceiling, load shape: one line each. */
  readonly setup: ReadonlyArray<string>
  readonly tables: ReadonlyArray<Table>
  readonly notes?: ReadonlyArray<string>
  /** The raw figures, for the JSON file. */
  readonly data: unknown
}

export const markdownTable = (table: Table): string => {
  const line = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`
  return [
    ...(table.title === undefined ? [] : [`**${table.title}**`, ""]),
    line(table.headers),
    line(table.headers.map(() => "---")),
    ...table.rows.map(line)
  ].join("\n")
}

export const markdown = (report: Report): string =>
  [
    `## ${report.scenario}: ${report.title}`,
    "",
    `Machine: ${describe(machine())}; load average ${load()} when the scenario ended.`,
    "",
    ...report.setup.map((s) => `- ${s}`),
    "",
    ...report.tables.flatMap((t) => [markdownTable(t), ""]),
    ...(report.notes ?? []).map((n) => `- ${n}`)
  ].join("\n")

export const write = (report: Report): void => {
  mkdirSync(resultsDir, { recursive: true })
  const text = markdown(report)
  console.log(text)
  writeFileSync(new URL(`${report.scenario}.md`, resultsDir), text + "\n")
  const json = { ...report, date: new Date().toISOString(), machine: machine(), load: load() }
  writeFileSync(new URL(`${report.scenario}.json`, resultsDir), JSON.stringify(json, null, 2) + "\n")
}

export const writeFile = (name: string, content: string): void => {
  mkdirSync(resultsDir, { recursive: true })
  writeFileSync(new URL(name, resultsDir), content)
}
