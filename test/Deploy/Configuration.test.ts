/**
 * docs/configuration.md against the code, both ways: every environment variable the sources read has a row,
 * and every row names a variable the sources read. Names are found as string literals in src/ (comments
 * stripped): `"SLUICE_…"`, `"OLLAMA_…"`, `"OTEL_…"`, `"NODE_ENV"`, and inside a `Config.nested(…, "PREFIX")`
 * the capitalised literals of that file, prefixed (`"MAX_BODY_BYTES"` under `"SLUICE"`).
 */
import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const sources = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []
  )

const stripComments = (code: string) => code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")

const envName = /^(SLUICE_[A-Z0-9_]+|OLLAMA_[A-Z0-9_]+|OTEL_[A-Z0-9_]+|NODE_ENV)$/

/** Every environment variable the sources read. */
const readByCode = (): Set<string> => {
  const names = new Set<string>()
  for (const file of sources("src")) {
    const code = stripComments(readFileSync(file, "utf8"))
    const literals = Array.from(code.matchAll(/"([A-Z][A-Z0-9_]*)"/g), (m) => m[1]!)
    for (const literal of literals) if (envName.test(literal)) names.add(literal)
    for (const [, prefix] of code.matchAll(/Config\.nested\([\s\S]*?,\s*"([A-Z][A-Z0-9_]*)"\s*\)/g)) {
      for (const literal of literals) {
        if (literal !== prefix && !envName.test(literal)) names.add(`${prefix}_${literal}`)
      }
    }
  }
  return names
}

/** The variables in the first column of docs/configuration.md's tables. */
const documented = (): Set<string> =>
  new Set(Array.from(readFileSync("docs/configuration.md", "utf8").matchAll(/^\| `([A-Z][A-Z0-9_]+)`/gm), (m) => m[1]!))

describe("docs/configuration.md", () => {
  it("has a row for every environment variable the code reads", () => {
    const doc = documented()
    assert.deepStrictEqual([...readByCode()].filter((n) => !doc.has(n)).sort(), [])
  })

  it("documents no variable the code does not read", () => {
    const code = readByCode()
    assert.isAbove(code.size, 30)
    assert.deepStrictEqual([...documented()].filter((n) => !code.has(n)).sort(), [])
  })
})
