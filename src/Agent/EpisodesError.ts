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

/** The runner no longer holds the episode's lease (another instance took it over): its write was refused. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  id: Schema.String,
  owner: Schema.String
}) {
  override get message() {
    return `episode ${this.id}: instance ${this.owner} lost its lease (another instance took the episode over)`
  }
}

/** Another instance holds the episode's lease: it is running there. */
export class LeaseHeld extends Schema.TaggedError<LeaseHeld>()("LeaseHeld", {
  id: Schema.String,
  owner: Schema.String,
  expiresAt: Schema.Number
}) {
  override get message() {
    return `episode ${this.id} is running on instance ${this.owner} (its lease runs until ${new Date(this.expiresAt).toISOString()})`
  }
}

/** A takeover found the lease held again, gone, or the episode no longer running: another instance won. */
export class NotTakenOver extends Schema.TaggedError<NotTakenOver>()("NotTakenOver", { id: Schema.String }) {
  override get message() {
    return `episode ${this.id} was not taken over: its lease is held, or it no longer runs`
  }
}

export const EpisodeError = Schema.Union(EpisodeNotFound, EpisodeNotRunning, TickOutOfOrder)
export type EpisodeError = typeof EpisodeError.Type
