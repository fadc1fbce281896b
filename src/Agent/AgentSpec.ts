/**
 * What an agent is: a Schema for the specs users write as JSON files (examples/agents/) or build in code.
 *
 * Choices:
 * - Every field but `name` and `model` has a default, applied when decoding; the episode stores the encoded spec
 *   (defaults filled in), so `agent resume` runs exactly what was started even if the file changed since.
 * - Durations are strings Effect's `Duration` understands ("200 millis", "2 seconds"), checked when decoding.
 * - Unknown fields are errors (a misspelt `maxTick` must not silently fall back to a default).
 * - `goal` is an optional default goal; `--goal` (or the `goal` argument of `Agent.run`) overrides it.
 */
import { Data, Duration, Effect, Option, ParseResult, Schema } from "effect"
import { readFile } from "node:fs/promises"
import type { Limits } from "../Llm/Budget.js"

/** A duration string such as "200 millis" or "2 seconds". */
export const DurationString = Schema.String.pipe(
  Schema.filter((s) => Duration.decodeUnknown(s)._tag === "Some" || `not a duration: "${s}" (try "500 millis")`)
)

const Count = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))

/** The limits of one tick: engine calls (chats and embeddings), model tokens and wall time. */
export const TickBudget = Schema.Struct({
  calls: Schema.optional(Count),
  tokens: Schema.optional(Count),
  time: Schema.optional(DurationString)
})
export type TickBudget = typeof TickBudget.Type

export const MemorySettings = Schema.Struct({
  /** The VectorMemory namespace (default: the agent's name). */
  namespace: Schema.optional(Schema.NonEmptyTrimmedString),
  /** Memories recalled into each tick's prompt (0: none); also the `recall` tool's k. */
  recallK: Schema.optionalWith(Count, { default: () => 3 }),
  /** The embedding model of new memories (default: VectorMemory's, "nomic-embed-text"). */
  embeddingModel: Schema.optional(Schema.NonEmptyTrimmedString),
  /** Store each tick's final reply as a memory (default true). */
  remember: Schema.optionalWith(Schema.Boolean, { default: () => true })
})
export type MemorySettings = typeof MemorySettings.Type

export const AgentSpec = Schema.Struct({
  /** Also its inbox: other agents `publish` to this name. */
  name: Schema.NonEmptyTrimmedString,
  model: Schema.NonEmptyTrimmedString,
  system: Schema.optionalWith(Schema.String, { default: () => "" }),
  /** A default goal for `agent run` without `--goal`. */
  goal: Schema.optional(Schema.String),
  /** Tool names from the ToolRegistry; `finish` is always offered. */
  tools: Schema.optionalWith(Schema.Array(Schema.NonEmptyTrimmedString), { default: () => [] }),
  /** The pause between two ticks. */
  tickInterval: Schema.optionalWith(DurationString, { default: () => "0 millis" }),
  /** Per tick; a missing limit is not limited. */
  budget: Schema.optionalWith(TickBudget, { default: () => ({}) }),
  /** The episode fails when this tick ends without `finish`. */
  maxTicks: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 10 }),
  /** Model calls per tick: think, act, think again... (default 4). */
  maxSteps: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 4 }),
  /** After a tick over budget: go on with the next tick, or end the episode as failed. */
  onBudgetExceeded: Schema.optionalWith(Schema.Literal("continue", "end"), { default: () => "continue" as const }),
  memory: Schema.optionalWith(MemorySettings, { default: () => ({ recallK: 3, remember: true }) })
})
export type AgentSpec = typeof AgentSpec.Type
export type AgentSpecEncoded = typeof AgentSpec.Encoded

/** A spec that cannot be read or does not decode (the reason says which field and why). */
export class SpecError extends Data.TaggedError("SpecError")<{ readonly source: string; readonly reason: string }> {
  override get message() {
    return `invalid agent spec ${this.source}: ${this.reason}`
  }
}

const strict = { errors: "all", onExcessProperty: "error" } as const

const reasonOf = (error: ParseResult.ParseError) => ParseResult.TreeFormatter.formatErrorSync(error)

/** Decodes a spec from an unknown value (a parsed JSON file, a stored episode). */
export const decode = (input: unknown, source = "(value)"): Effect.Effect<AgentSpec, SpecError> =>
  Schema.decodeUnknown(
    AgentSpec,
    strict
  )(input).pipe(Effect.mapError((error) => new SpecError({ source, reason: reasonOf(error) })))

/** Decodes a spec from JSON text. */
export const decodeJson = (text: string, source = "(json)"): Effect.Effect<AgentSpec, SpecError> =>
  Schema.decodeUnknown(
    Schema.parseJson(AgentSpec),
    strict
  )(text).pipe(Effect.mapError((error) => new SpecError({ source, reason: reasonOf(error) })))

/** Reads and decodes a spec file. */
export const fromFile = (path: string): Effect.Effect<AgentSpec, SpecError> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) => new SpecError({ source: path, reason: `cannot read the file: ${String(cause)}` })
  }).pipe(Effect.flatMap((text) => decodeJson(text, path)))

/** The spec as JSON-ready data, with its defaults filled in (what an episode stores). */
export const encode = (spec: AgentSpec): AgentSpecEncoded => Schema.encodeSync(AgentSpec)(spec)

/** Builds a spec in code from the required fields and any others (defaults applied). */
export const make = (fields: AgentSpecEncoded): AgentSpec => Schema.decodeUnknownSync(AgentSpec, strict)(fields)

/** The tick budget as `Budget.scoped` takes it. */
export const limitsOf = (spec: AgentSpec): Limits => ({
  calls: spec.budget.calls,
  tokens: spec.budget.tokens,
  time: spec.budget.time === undefined ? undefined : durationOf(spec.budget.time)
})

/** A checked duration string as a Duration. */
export const durationOf = (text: string): Duration.Duration =>
  Option.getOrElse(Duration.decodeUnknown(text), () => Duration.zero)

/** The namespace of the spec's memories. */
export const namespaceOf = (spec: AgentSpec): string => spec.memory.namespace ?? spec.name
