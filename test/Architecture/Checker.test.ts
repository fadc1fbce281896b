/** The import checker itself: it reads every form of import, and it reports an upward edge and a cycle. */
import { assert, describe, it } from "@effect/vitest"
import { check, cycles, importsOf, readTree } from "./Checker.js"
import { rule } from "./Rule.js"

const fixture = (files: Record<string, string>): ReadonlyMap<string, string> => new Map(Object.entries(files))

/** Domain <- Ollama <- Llm, each importing only downward. */
const layered = {
  "src/Domain/Error.ts": `export class Boom {}`,
  "src/Ollama/Client.ts": `import type { Boom } from "../Domain/Error.js"\nexport const client = 1`,
  "src/Llm/Llm.ts": `import { client } from "../Ollama/Client.js"\nimport { Effect } from "effect"\nexport const llm = client`
}

describe("importsOf", () => {
  it("reads imports, type imports, re-exports, dynamic and type-level imports; not strings or comments", () => {
    const text = [
      `import { a } from "./a.js"`,
      `import type { B } from "./b.js"`,
      `import { type C } from "./c.js"`,
      `import "./d.js"`,
      `export * from "./e.js"`,
      `export type { F } from "./f.js"`,
      `export { g } from "./g.js"`,
      `import h = require("./h.js")`,
      `const i = () => import("./i.js")`,
      `type J = import("./j.js").J`,
      `// import { k } from "./k.js"`,
      `const l = "import { l } from './l.js'"`,
      `export const m = 1`
    ].join("\n")
    assert.deepStrictEqual(importsOf("x.ts", text), [
      "./a.js",
      "./b.js",
      "./c.js",
      "./d.js",
      "./e.js",
      "./f.js",
      "./g.js",
      "./h.js",
      "./i.js",
      "./j.js"
    ])
  })
})

describe("check", () => {
  it("passes code that imports only downward", () => {
    assert.deepStrictEqual(check(fixture(layered), rule), [])
  })

  it("reports an upward type import and the cycle it closes", () => {
    const files = fixture({ ...layered, "src/Domain/Uses.ts": `import type { llm } from "../Llm/Llm.js"` })
    assert.deepStrictEqual(check(files, rule), [
      `Domain -> Llm is not allowed: src/Domain/Uses.ts imports "../Llm/Llm.js"`,
      "cycle between Domain, Llm, Ollama: Domain -> Llm -> Ollama -> Domain"
    ])
  })

  it("reports a dynamic import into a folder the rule puts out of reach (the Simulator imports only Domain)", () => {
    const files = fixture({ ...layered, "src/Simulator/Sim.ts": `export const f = () => import("../Llm/Llm.js")` })
    assert.deepStrictEqual(check(files, rule), [
      `Simulator -> Llm is not allowed: src/Simulator/Sim.ts imports "../Llm/Llm.js"`
    ])
  })

  it("reports a folder or root file the rule does not place, and an import leaving src/", () => {
    const files = fixture({
      ...layered,
      "src/Plugins/Plugin.ts": `import { llm } from "../Llm/Llm.js"`,
      "src/Helpers.ts": `export const h = 1`,
      "src/Llm/Fixture.ts": `import { x } from "../../test/fixture.js"\nimport { version } from "../../package.json"`
    })
    assert.deepStrictEqual(check(files, rule), [
      `src/Llm/Fixture.ts imports "../../test/fixture.js", outside src/`,
      "src/Helpers.ts has no place in the rule",
      "Plugins (src/Plugins/Plugin.ts) has no place in the rule"
    ])
  })

  it("fails on src/ as it is once a file closes a cycle (Store importing Agent)", () => {
    const files = new Map(readTree("src"))
    files.set("src/Store/Upward.ts", `import type { Agent } from "../Agent/Agent.js"\nexport type A = Agent`)
    assert.deepStrictEqual(check(files, rule), [
      `Store -> Agent is not allowed: src/Store/Upward.ts imports "../Agent/Agent.js"`,
      "cycle between Agent, Store: Agent -> Store -> Agent"
    ])
  })
})

describe("cycles", () => {
  it("names each strongly connected group of folders once, with a path around it", () => {
    const graph = new Map([
      ["A", new Set(["B"])],
      ["B", new Set(["C"])],
      ["C", new Set(["A", "D"])],
      ["D", new Set<string>()],
      ["E", new Set(["F"])],
      ["F", new Set(["E", "D"])]
    ])
    assert.deepStrictEqual(cycles(graph), [
      "cycle between A, B, C: A -> B -> C -> A",
      "cycle between E, F: E -> F -> E"
    ])
  })

  it("finds none in a graph without one", () => {
    const graph = new Map([
      ["A", new Set(["B", "C"])],
      ["B", new Set(["C"])],
      ["C", new Set<string>()]
    ])
    assert.deepStrictEqual(cycles(graph), [])
  })
})
