/**
 * Reads every import of every file under src/ and checks it against the dependency rule (Rule.ts): an import
 * from a folder to one the rule does not allow, a folder the rule does not place, an import leaving src/, and any
 * cycle between folders are violations, each one line a person can act on.
 *
 * Choices:
 * - Imports are read with the TypeScript compiler's parser, not a regex: `import`, `import type`, `export ... from`,
 *   `export type ... from`, dynamic `import("...")` and type-level `import("...").T` all count. A type import is a
 *   dependency too: the folder cannot be understood or moved without the other.
 * - Only relative specifiers are followed (src/ has no path aliases); packages are not folders of src/.
 * - Cycles are found on the folder graph of the imports as they are (Tarjan's strongly connected components), apart
 *   from the rule, so a cycle is named even between folders the rule does not place.
 * - The checker takes a map of files (path from the repository root to text), so its own tests feed it fixtures
 *   without touching the disk.
 */
import { readdirSync, readFileSync } from "node:fs"
import { posix } from "node:path"
import ts from "typescript"
import { allowedFrom, type Rule } from "./Rule.js"

/** The module specifiers a file imports or re-exports, in source order. */
export const importsOf = (fileName: string, text: string): ReadonlyArray<string> => {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  const specifiers: Array<string> = []
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      specifiers.push(node.moduleSpecifier.text)
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      specifiers.push(node.moduleReference.expression.text)
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments
      if (argument !== undefined && ts.isStringLiteralLike(argument)) specifiers.push(argument.text)
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      specifiers.push(node.argument.literal.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return specifiers
}

/** The folder of a path under src/ (`src/Llm/Scheduler/Slots.ts` -> `Llm`); undefined for an unplaced root file. */
export const folderOf = (rule: Rule, path: string): string | undefined => {
  const parts = path.split("/").slice(1)
  return parts.length === 1 ? rule.rootFiles[parts[0]!] : parts[0]
}

/** The file a relative specifier names, from the repository root (`.js` read as the `.ts` source). */
const resolve = (from: string, specifier: string): string =>
  posix.normalize(posix.join(posix.dirname(from), specifier)).replace(/\.js$/, ".ts")

export interface Edge {
  readonly from: string
  readonly to: string
  readonly file: string
  readonly specifier: string
}

/** Every import from one folder of src/ into another, and the violations found on the way. */
const edgesOf = (files: ReadonlyMap<string, string>, rule: Rule) => {
  const edges: Array<Edge> = []
  const problems: Array<string> = []
  const unplaced = new Set<string>()
  for (const [file, text] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    if (!file.startsWith("src/") || !file.endsWith(".ts")) continue
    const from = folderOf(rule, file)
    if (from === undefined) unplaced.add(`${file} has no place in the rule`)
    else if (allowedFrom(rule, from) === undefined) unplaced.add(`${from} (${file}) has no place in the rule`)
    for (const specifier of importsOf(file, text)) {
      if (!specifier.startsWith(".")) continue
      const target = resolve(file, specifier)
      if (!target.startsWith("src/")) {
        if (!rule.outside.includes(target)) problems.push(`${file} imports "${specifier}", outside src/`)
        continue
      }
      const to = folderOf(rule, target)
      if (to === undefined) unplaced.add(`${target} has no place in the rule`)
      if (from !== undefined && to !== undefined && from !== to) edges.push({ from, to, file, specifier })
    }
  }
  return { edges, problems: [...problems, ...unplaced] }
}

/** Imports the rule forbids, one line each. */
const forbidden = (edges: ReadonlyArray<Edge>, rule: Rule): ReadonlyArray<string> =>
  edges.flatMap((e) => {
    const allowed = allowedFrom(rule, e.from)
    return allowed === undefined || allowed.includes(e.to)
      ? []
      : [`${e.from} -> ${e.to} is not allowed: ${e.file} imports "${e.specifier}"`]
  })

/** The folder graph: each folder and the folders it imports. */
export const graphOf = (edges: ReadonlyArray<Edge>): ReadonlyMap<string, ReadonlySet<string>> => {
  const graph = new Map<string, Set<string>>()
  for (const e of edges) {
    if (!graph.has(e.to)) graph.set(e.to, new Set())
    const targets = graph.get(e.from) ?? new Set<string>()
    graph.set(e.from, targets.add(e.to))
  }
  return graph
}

/** The strongly connected components of more than one node (Tarjan), each sorted, in sorted order. */
const components = (graph: ReadonlyMap<string, ReadonlySet<string>>): ReadonlyArray<ReadonlyArray<string>> => {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const found: Array<Array<string>> = []
  const connect = (node: string): void => {
    index.set(node, index.size)
    low.set(node, index.get(node)!)
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        connect(next)
        low.set(node, Math.min(low.get(node)!, low.get(next)!))
      } else if (stack.includes(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!))
      }
    }
    if (low.get(node) !== index.get(node)) return
    const component: Array<string> = []
    for (let top = stack.pop()!; ; top = stack.pop()!) {
      component.push(top)
      if (top === node) break
    }
    if (component.length > 1) found.push(component.sort())
  }
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) connect(node)
  return found.sort((a, b) => a[0]!.localeCompare(b[0]!))
}

/** The shortest cycle through the first folder of a component, written `A -> B -> A`. */
const cycleThrough = (graph: ReadonlyMap<string, ReadonlySet<string>>, component: ReadonlyArray<string>) => {
  const start = component[0]!
  const previous = new Map<string, string>()
  const queue = [start]
  while (queue.length > 0 && !previous.has(start)) {
    const node = queue.shift()!
    for (const next of [...(graph.get(node) ?? [])].sort()) {
      if (!component.includes(next) || previous.has(next)) continue
      previous.set(next, node)
      queue.push(next)
    }
  }
  const path = [start]
  for (let node = previous.get(start)!; node !== start; node = previous.get(node)!) path.unshift(node)
  return [start, ...path].join(" -> ")
}

/** Every cycle between folders, one line per strongly connected component. */
export const cycles = (graph: ReadonlyMap<string, ReadonlySet<string>>): ReadonlyArray<string> =>
  components(graph).map((c) => `cycle between ${c.join(", ")}: ${cycleThrough(graph, c)}`)

/** Every violation of `rule` in `files` (path from the repository root -> text); empty when the code follows it. */
export const check = (files: ReadonlyMap<string, string>, rule: Rule): ReadonlyArray<string> => {
  const { edges, problems } = edgesOf(files, rule)
  return [...problems, ...forbidden(edges, rule), ...cycles(graphOf(edges))]
}

/** The folder graph of `files`, for reports. */
export const folderGraph = (files: ReadonlyMap<string, string>, rule: Rule) => graphOf(edgesOf(files, rule).edges)

/** The `.ts` files under `dir` (relative to the working directory), keyed by their path. */
export const readTree = (dir: string): ReadonlyMap<string, string> => {
  const files = new Map<string, string>()
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = `${d}/${entry.name}`
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith(".ts")) files.set(path, readFileSync(path, "utf8"))
    }
  }
  walk(dir)
  return files
}
