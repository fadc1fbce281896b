/**
 * The errors of the episode store that a caller acts on (the runtime, the CLI, the HTTP API). Storage failures
 * are `StorageError` (Store/StorageError.ts); these say the request does not fit the episode's state.
 */
import { Schema } from "effect"

export class EpisodeNotFound extends Schema.TaggedError<EpisodeNotFound>()("EpisodeNotFound", {
  id: Schema.String,
  /** "hot" for the episode tables, "archive" for the archive index. */
  where: Schema.Literal("hot", "archive")
}) {
  override get message() {
    return this.where === "hot"
      ? `episode ${this.id} not found (it may be archived: see \`sluice archive --restore\`)`
      : `episode ${this.id} is not in the archive`
  }
}

export class EpisodeNotRunning extends Schema.TaggedError<EpisodeNotRunning>()("EpisodeNotRunning", {
  id: Schema.String,
  status: Schema.String,
  operation: Schema.String
}) {
  override get message() {
    return `episode ${this.id} is ${this.status}: cannot ${this.operation}`
  }
}

export class TickOutOfOrder extends Schema.TaggedError<TickOutOfOrder>()("TickOutOfOrder", {
  id: Schema.String,
  expected: Schema.Number,
  got: Schema.Number
}) {
  override get message() {
    return `episode ${this.id}: tick ${this.got} cannot be committed, the next tick is ${this.expected}`
  }
}

export const EpisodeError = Schema.Union(EpisodeNotFound, EpisodeNotRunning, TickOutOfOrder)
export type EpisodeError = typeof EpisodeError.Type
