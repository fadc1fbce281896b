/**
 * The event bus's vocabulary: typed topics, events, subscriber options, dead letters and stats.
 *
 * A topic is a name and a Schema: publishers are checked against it, the persistent log and the dead letters keep
 * the payload encoded with it (JSON text), and reads decode with it. A name is one contract: declare each topic
 * once, as a constant, and share it.
 */
import type { Duration, Effect } from "effect"
import { Schema } from "effect"

/** A named, typed channel; `A` is what handlers see, `I` its JSON-ready encoding. */
export interface Topic<A, I = A> {
  readonly name: string
  readonly schema: Schema.Schema<A, I>
  /** The schema from the JSON text stored in the log and in dead letters. */
  readonly json: Schema.Schema<A, string>
}

/** Declares a topic. */
export const topic = <A, I>(name: string, schema: Schema.Schema<A, I>): Topic<A, I> => ({
  name,
  schema,
  json: Schema.parseJson(schema)
})

/** One published payload; `id` is unique and sorts in publish order, `at` is epoch milliseconds. */
export interface Event<A> {
  readonly id: string
  readonly topic: string
  readonly payload: A
  readonly at: number
}

/**
 * What a full mailbox does: `backpressure` makes publishers wait for this subscriber; `drop-oldest` drops the
 * oldest queued event (counted in `stats.dropped`) and never makes a publisher wait.
 */
export type Overflow = "backpressure" | "drop-oldest"

export interface SubscribeOptions {
  /** Unique among live subscribers; keys the dead letters and the stats. */
  readonly name: string
  /** Events queued for this subscriber (default 256, at least 1). */
  readonly mailbox?: number
  /** Default `backpressure`. */
  readonly overflow?: Overflow
  /** A handler running longer fails with a timeout (dead-lettered like any failure). Default: no limit. */
  readonly timeout?: Duration.DurationInput
}

/** A live subscriber; it stops when the scope it was made in closes, or on `unsubscribe`. */
export interface Subscription {
  readonly name: string
  readonly topic: string
  /** Events waiting in the mailbox. */
  readonly pending: Effect.Effect<number>
  readonly unsubscribe: Effect.Effect<void>
}

/** An event a handler failed on (typed failure or defect), kept for inspection and replay. */
export interface DeadLetter {
  readonly id: string
  readonly handler: string
  readonly topic: string
  readonly eventId: string
  readonly eventAt: number
  /** The payload as stored: the topic schema's JSON encoding. */
  readonly payload: string
  /** The printed cause. */
  readonly cause: string
  /** When the handler failed (epoch ms). */
  readonly at: number
  /** When a replay succeeded, if one did. */
  readonly replayedAt: number | null
}

export interface DeadLetterFilter {
  readonly handler?: string
  readonly topic?: string
  /** Only those not replayed yet. */
  readonly pending?: boolean
  /** Default 100. */
  readonly limit?: number
}

/** A time range of the event log: `since <= at < until`. */
export interface EventFilter {
  readonly since?: number
  readonly until?: number
  /** Default 100. */
  readonly limit?: number
}

/** Counters since the bus started; per-handler ones are keyed by handler name and kept after unsubscribing. */
export interface BusStats {
  readonly published: number
  readonly delivered: Readonly<Record<string, number>>
  readonly failures: Readonly<Record<string, number>>
  readonly dropped: Readonly<Record<string, number>>
  /** Dead letters stored. */
  readonly deadLetters: number
  /** Dead letters that could not be stored (logged). */
  readonly deadLettersLost: number
  /** Topics with a hub, that is with a subscriber, in the order their hubs were made. */
  readonly topics: ReadonlyArray<string>
}
