/**
 * The sentence a client reads when its body fails the wire Schema, in its API family's own words, never Schema's
 * rendering of a type (`{ readonly model: string; ... }`). One `Problem` is taken from the `ParseError`: the deepest
 * path that failed (a member of a union that got further names the real culprit: `messages[0].content[0].text`
 * rather than `messages[0].content`), what was expected there in plain words, and what was sent.
 *
 * Choices:
 * - The issue tree is walked here, as `ParseResult.ArrayFormatter` walks it, because the ArrayFormatter's messages
 *   are Schema's renderings (`Expected ReadonlyArray<...>, actual 42`); the walk keeps each issue's AST instead.
 * - Ollama: `model is required` (and `<path> is required` for any other field), Ollama's fixed sentences where a
 *   route has one (`invalid input type` on /api/embed), otherwise `invalid type for "<path>": expected ..., got ...`
 *   (Ollama's own words there are Go's decoder internals, `json: cannot unmarshal ... into Go struct field ...`).
 * - OpenAI: its envelope with `param` and `code`, and its sentences: `Missing required parameter: 'x'.`,
 *   `Invalid type for 'x': expected ..., but got ... instead.`, `Invalid value: 'v'. Supported values are: ...`.
 * - Always 400.
 */
import { Option, type ParseResult } from "effect"
import * as AST from "effect/SchemaAST"
import { BadRequest } from "./Guard.js"

/** Turns a Schema refusal into the family's 400. */
export type Refuse = (error: ParseResult.ParseError) => BadRequest

export interface Problem {
  /** Where, from the body's root (`[]` for the body itself). */
  readonly path: ReadonlyArray<PropertyKey>
  /** `missing`: a required field is absent; `value`: not one of a few allowed values; `type`: anything else. */
  readonly kind: "missing" | "type" | "value"
  /** What was expected, in words (`a string`, `one of a boolean or a string`). */
  readonly expected: string
  /** The allowed values, for `value`. */
  readonly values: ReadonlyArray<AST.LiteralValue>
  readonly actual: unknown
}

interface Leaf {
  readonly path: ReadonlyArray<PropertyKey>
  readonly missing: boolean
  readonly ast: AST.AST
  readonly actual: unknown
}

const many = <A>(x: A | ReadonlyArray<A>): ReadonlyArray<A> => (Array.isArray(x) ? x : [x as A])

const leavesOf = (issue: ParseResult.ParseIssue, path: ReadonlyArray<PropertyKey>): ReadonlyArray<Leaf> => {
  switch (issue._tag) {
    case "Pointer":
      // a field looked up in an array: the array is where an object was wanted (a union of structs does this)
      return Array.isArray(issue.actual) && typeof many(issue.path)[0] === "string"
        ? [{ path, missing: false, ast: AST.objectKeyword, actual: issue.actual }]
        : leavesOf(issue.issue, [...path, ...many(issue.path)])
    case "Composite":
      return many(issue.issues).flatMap((i) => leavesOf(i, path))
    case "Transformation":
      return leavesOf(issue.issue, path)
    case "Refinement":
      // the refinement names what is wanted ("an integer"), whether its base type or its predicate failed
      return issue.kind === "Predicate"
        ? [{ path, missing: false, ast: issue.ast, actual: issue.actual }]
        : leavesOf(issue.issue, path).map((l) => (l.path.length === path.length ? { ...l, ast: issue.ast } : l))
    case "Missing":
      return [{ path, missing: true, ast: issue.ast.type, actual: undefined }]
    case "Unexpected":
      // an excess field (the routes preserve them, so only a stricter schema says this)
      return [{ path, missing: false, ast: AST.neverKeyword, actual: issue.actual }]
    default:
      return [{ path, missing: false, ast: issue.ast, actual: issue.actual }]
  }
}

/** `a string` / `strings`, from the wire (encoded) side of a schema. */
const nounOf = (ast: AST.AST): { readonly one: string; readonly many: string } => {
  const described = Option.getOrUndefined(AST.getDescriptionAnnotation(ast))
  switch (ast._tag) {
    case "StringKeyword":
    case "TemplateLiteral":
      return { one: "a string", many: "strings" }
    case "NumberKeyword":
      return { one: "a number", many: "numbers" }
    case "BooleanKeyword":
      return { one: "a boolean", many: "booleans" }
    case "Literal":
      return { one: ast.literal === null ? "null" : JSON.stringify(ast.literal), many: "values" }
    case "TypeLiteral":
    case "ObjectKeyword":
      return { one: "an object", many: "objects" }
    case "TupleType": {
      const rest = ast.elements.length === 0 && ast.rest.length === 1 ? ast.rest[0]!.type : undefined
      return { one: rest === undefined ? "an array" : `an array of ${nounOf(rest).many}`, many: "arrays" }
    }
    case "Union": {
      const members = ast.types.map(nounOf)
      const plural = new Set(members.map((m) => m.many))
      return { one: oneOf(members.map((m) => m.one)), many: plural.size === 1 ? [...plural][0]! : "values" }
    }
    case "Transformation":
      return nounOf(ast.from)
    case "Suspend":
      return nounOf(ast.f())
    case "Refinement":
      return described === undefined ? nounOf(ast.from) : { one: described, many: "values" }
    case "UnknownKeyword":
    case "AnyKeyword":
      return { one: "any value", many: "values" }
    case "NeverKeyword":
      return { one: "no value", many: "values" }
    default:
      return { one: described ?? "a valid value", many: "values" }
  }
}

/** `a string`, `one of a string or an array of strings`; `null` is left out when something else is accepted. */
const oneOf = (words: ReadonlyArray<string>) => {
  const unique = [...new Set(words)]
  const shown = unique.length > 1 ? unique.filter((w) => w !== "null") : unique
  return shown.length === 1 ? shown[0]! : `one of ${shown.slice(0, -1).join(", ")} or ${shown[shown.length - 1]}`
}

/** The literal values a leaf allows, or undefined when it allows more than literals. */
const literalsOf = (ast: AST.AST): ReadonlyArray<AST.LiteralValue> | undefined => {
  if (ast._tag === "Literal") return [ast.literal]
  if (ast._tag !== "Union") return undefined
  const all = ast.types.map(literalsOf)
  return all.every((l) => l !== undefined) ? all.flat() : undefined
}

const samePath = (a: ReadonlyArray<PropertyKey>, b: ReadonlyArray<PropertyKey>) =>
  a.length === b.length && a.every((k, i) => k === b[i])

/** The one problem to report for `error`: the deepest path that failed, with every expectation at that path. */
export const problemOf = (error: ParseResult.ParseError): Problem => {
  const leaves = leavesOf(error.issue, [])
  const deepest = leaves.reduce((a, b) => (b.path.length > a.path.length ? b : a))
  const here = leaves.filter((l) => samePath(l.path, deepest.path))
  const base = { path: deepest.path, actual: deepest.actual }
  if (here.some((l) => l.missing)) return { ...base, kind: "missing", expected: "a value", values: [] }
  const literals = here.map((l) => literalsOf(l.ast))
  const values = literals.every((l) => l !== undefined) ? literals.flat().filter((v) => v !== null) : undefined
  // a value of the right kind that is not one of those allowed ("bot" for a role); a number there is a wrong type
  if (values !== undefined && values.length > 0 && values.every((v) => typeof v === typeof deepest.actual))
    return { ...base, kind: "value", expected: oneOf(values.map((v) => JSON.stringify(v))), values }
  return { ...base, kind: "type", expected: oneOf(here.map((l) => nounOf(l.ast).one)), values: [] }
}

/** `messages[0].content`. */
export const pathOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join("")

/** What was sent, in words: `a string`, `an integer`, `an array`. */
export const kindOf = (value: unknown): string => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "an array"
  switch (typeof value) {
    case "string":
      return "a string"
    case "boolean":
      return "a boolean"
    case "number":
      return Number.isInteger(value) ? "an integer" : "a decimal number"
    case "object":
      return "an object"
    default:
      return "nothing"
  }
}

const refuse = (reason: string, fields: { param?: string; code?: string } = {}) =>
  new BadRequest({ reason, status: 400, ...fields })

/** The body as a whole is the wrong thing: `an object` is said `a JSON object` to an Ollama client. */
const wholeBody = (p: Problem) => (p.expected === "an object" ? "a JSON object" : p.expected)

/**
 * Ollama's words. `sentences` holds Ollama's fixed sentence for a wrong value anywhere under a top-level field
 * (`{ input: "invalid input type" }` on /api/embed).
 */
export const ollama =
  (sentences: Readonly<Record<string, string>> = {}): Refuse =>
  (error) => {
    const p = problemOf(error)
    const path = pathOf(p.path)
    const fixed = typeof p.path[0] === "string" && p.kind !== "missing" ? sentences[p.path[0]] : undefined
    if (fixed !== undefined) return refuse(fixed)
    if (p.path.length === 0) return refuse(`invalid request body: expected ${wholeBody(p)}, got ${kindOf(p.actual)}`)
    if (p.kind === "missing") return refuse(`${path} is required`)
    const got = p.kind === "value" ? JSON.stringify(p.actual) : kindOf(p.actual)
    return refuse(`invalid ${p.kind} for "${path}": expected ${p.expected}, got ${got}`)
  }

const quoted = (v: unknown) => `'${typeof v === "string" ? v : JSON.stringify(v)}'`

/** `'a'`, `'a' and 'b'`, `'a', 'b', and 'c'` (OpenAI's list). */
const listOf = (values: ReadonlyArray<unknown>) => {
  const items = values.map(quoted)
  if (items.length <= 2) return items.join(" and ")
  return `${items.slice(0, -1).join(", ")}, and ${items[items.length - 1]}`
}

/** OpenAI's words, with the field in `param` and OpenAI's `code`. */
export const openAi: Refuse = (error) => {
  const p = problemOf(error)
  const param = pathOf(p.path)
  if (p.path.length === 0)
    return refuse(`Invalid type for the request body: expected ${p.expected}, but got ${kindOf(p.actual)} instead.`, {
      code: "invalid_type"
    })
  if (p.kind === "missing")
    return refuse(`Missing required parameter: '${param}'.`, { param, code: "missing_required_parameter" })
  if (p.kind === "value")
    return refuse(`Invalid value: ${quoted(p.actual)}. Supported values are: ${listOf(p.values)}.`, {
      param,
      code: "invalid_value"
    })
  return refuse(`Invalid type for '${param}': expected ${p.expected}, but got ${kindOf(p.actual)} instead.`, {
    param,
    code: "invalid_type"
  })
}
