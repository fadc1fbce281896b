/**
 * The event bus's typed errors; each says what went wrong and what to do. `EventBusError` is the union type and
 * the union schema (for callers that send them over a boundary). Storage failures stay `StorageError`.
 */
import { Schema } from "effect"

/** A payload did not match its topic's schema (when publishing, or when reading a stored event or dead letter). */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  topic: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `event bus: a payload of topic "${this.topic}" does not match the topic's schema: ${this.reason}`
  }
}

/** Wraps a schema error of `topic`'s payload. */
export const invalidPayload =
  (topic: string) =>
  (error: { readonly message: string }): InvalidPayload =>
    new InvalidPayload({ topic, reason: error.message })

/** Another live subscriber already uses this handler name (names key the dead letters and the stats). */
export class HandlerNameTaken extends Schema.TaggedError<HandlerNameTaken>()("HandlerNameTaken", {
  handler: Schema.String
}) {
  override get message() {
    return `event bus: a subscriber named "${this.handler}" is already running; give each subscriber its own name`
  }
}

/** No dead letter has this id. */
export class DeadLetterNotFound extends Schema.TaggedError<DeadLetterNotFound>()("DeadLetterNotFound", {
  id: Schema.String
}) {
  override get message() {
    return `event bus: no dead letter with id "${this.id}"; list them with deadLetters()`
  }
}

/** A replay needs the dead letter's handler to be subscribed (to the same topic) in this process. */
export class HandlerNotSubscribed extends Schema.TaggedError<HandlerNotSubscribed>()("HandlerNotSubscribed", {
  handler: Schema.String,
  topic: Schema.String
}) {
  override get message() {
    return `event bus: cannot replay to "${this.handler}" on topic "${this.topic}": no such subscriber is running; subscribe it first`
  }
}

/** The handler failed again on a replayed dead letter; the dead letter stays pending. */
export class ReplayFailed extends Schema.TaggedError<ReplayFailed>()("ReplayFailed", {
  deadLetterId: Schema.String,
  handler: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `event bus: replaying dead letter "${this.deadLetterId}" to "${this.handler}" failed again: ${this.reason}`
  }
}

export const EventBusError = Schema.Union(
  InvalidPayload,
  HandlerNameTaken,
  DeadLetterNotFound,
  HandlerNotSubscribed,
  ReplayFailed
)
export type EventBusError = typeof EventBusError.Type
