/**
 * The records of agent runs: an `Episode` per run of an agent toward a goal, and a `Tick` per step of it
 * (observe, recall, think, act, remember). These are the domain shapes; `Store/EpisodesRepo.ts` maps them to rows.
 *
 * Choices:
 * - Times are integer milliseconds since the epoch (read from `Clock`), durations integer milliseconds.
 * - Free-form parts (the agent spec, a tick's inputs, tool arguments and results) are `unknown` JSON values.
 * - Tick numbers start at 1 and grow by 1 within an episode; `Episode.ticks` is the last committed one.
 * - "archived" is the status of an episode that left the hot tables: it only appears on an `ArchiveEntry`.
 * - In Domain, not Agent: the Store's repository decodes rows into these shapes and the Agent runtime writes them,
 *   and Store sits below Agent (docs/architecture.md, "The dependency rule").
 */
import { Schema } from "effect"
import { Message } from "./Chat.js"
import { optional } from "./Common.js"

/** Where an episode is in its life. */
export const EpisodeStatus = Schema.Literal("running", "completed", "failed", "interrupted", "archived")
export type EpisodeStatus = typeof EpisodeStatus.Type

/** The statuses an episode in the hot tables can have. */
export const HotStatus = Schema.Literal("running", "completed", "failed", "interrupted")
export type HotStatus = typeof HotStatus.Type

/** How a run ends (`interrupted` can be resumed). */
export const EndStatus = Schema.Literal("completed", "failed", "interrupted")
export type EndStatus = typeof EndStatus.Type

export const Episode = Schema.Struct({
  id: Schema.String,
  agent: Schema.String,
  goal: Schema.String,
  /** The agent spec the episode runs (JSON). */
  spec: Schema.Unknown,
  status: HotStatus,
  createdAt: Schema.Number,
  updatedAt: Schema.Number,
  endedAt: optional(Schema.Number),
  /** Committed ticks (also the number of the last one). */
  ticks: Schema.Number,
  /** Model tokens over all ticks. */
  tokens: Schema.Number,
  result: optional(Schema.String),
  error: optional(Schema.String)
})
export type Episode = typeof Episode.Type

/** One tool call of a tick and what it returned. */
export const ToolCallRecord = Schema.Struct({
  id: optional(Schema.String),
  name: Schema.String,
  arguments: Schema.Unknown,
  result: Schema.Unknown,
  error: optional(Schema.String)
})
export type ToolCallRecord = typeof ToolCallRecord.Type

/** What the tick's budget had used when it ended (see `Llm/Budget.ts` `Usage`). */
export const BudgetUse = Schema.Struct({ calls: Schema.Number, tokens: Schema.Number, elapsedMs: Schema.Number })
export type BudgetUse = typeof BudgetUse.Type

export const TickOutcome = Schema.Literal("ok", "budget-exceeded", "error")
export type TickOutcome = typeof TickOutcome.Type

export const Tick = Schema.Struct({
  episodeId: Schema.String,
  n: Schema.Number,
  startedAt: Schema.Number,
  durationMs: Schema.Number,
  /** The events observed (JSON). */
  inputs: Schema.Unknown,
  /** Ids of the memories recalled. */
  recalled: Schema.Array(Schema.String),
  /** The messages sent to the model and received from it. */
  messages: Schema.Array(Message),
  toolCalls: Schema.Array(ToolCallRecord),
  tokens: Schema.Number,
  budget: optional(BudgetUse),
  outcome: TickOutcome,
  error: optional(Schema.String)
})
export type Tick = typeof Tick.Type

/** An episode that was moved out of the hot tables into `file` (relative to the data directory). */
export const ArchiveEntry = Schema.Struct({
  episodeId: Schema.String,
  agent: Schema.String,
  status: Schema.Literal("archived"),
  /** The status it had when it was archived (and gets back on restore). */
  finalStatus: HotStatus,
  createdAt: Schema.Number,
  updatedAt: Schema.Number,
  file: Schema.String,
  sha256: Schema.String,
  bytes: Schema.Number,
  tickCount: Schema.Number,
  archivedAt: Schema.Number
})
export type ArchiveEntry = typeof ArchiveEntry.Type
