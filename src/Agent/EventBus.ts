/**
 * The agents' event bus: typed topics over PubSub, isolated subscribers, dead letters and an optional event log.
 *
 * Choices:
 * - One bounded `PubSub` hub per topic, made when the first subscriber arrives and shut down when the last one
 *   leaves (a registry, Llm/Keyed.ts, with no idle time: a hub nobody listens to delivers nothing, so keeping it
 *   would only grow the bus with every topic ever subscribed). Publishing holds the hub, if there is one, until
 *   its event is in, so the last subscriber leaving meanwhile cannot shut it under the publisher. Publishing to a
 *   topic nobody listens to still validates (and logs, when persisting) but delivers nothing. Subscribers see only
 *   events published after `subscribe` returned. The hubs need no bound of their own: each is held by a live
 *   subscription, so there are never more hubs than subscribers.
 * - Publishing validates the payload by encoding it with the topic's schema (an `InvalidPayload` otherwise); the
 *   JSON text is written to the event log before the event is published (write-ahead), and kept for dead letters.
 * - Each subscriber has its own scope (a child of the caller's), mailbox and fibers (see `EventBusSubscriber`).
 *   A handler's typed failure, defect or timeout is caught with `Effect.exit`: counted per handler, logged with
 *   the handler, topic and event id (never the payload), stored as a dead letter; the worker goes on with the next
 *   event. A dead letter that cannot be stored is logged and counted (`deadLettersLost`), never fatal.
 * - Handler names are unique among live subscribers (they key dead letters and stats). A handler never runs
 *   concurrently with itself: deliveries and replays share a one-permit semaphore.
 * - `replay` re-runs a dead letter through its live handler in the caller's fiber, so the caller learns the
 *   outcome; success marks it replayed, failure leaves it pending and fails with `ReplayFailed`.
 * - Event ids are the time in hex, a per-bus sequence and random bits: unique, and they sort in publish order, so
 *   the log reads back in order even within one millisecond.
 * - Dead letters are always stored; the event log can be switched off (`persist: false`).
 */
import { Cause, Clock, Config, Effect, ExecutionStrategy, Exit, Layer, Option, PubSub, Schema, Scope } from "effect"
import { randomBytes } from "node:crypto"
import * as Keyed from "../Llm/Keyed.js"
import type { StorageError } from "../Store/StorageError.js"
import { EventsRepo } from "../Store/EventsRepo.js"
import type { DeadLetterRow } from "../Store/EventsRepo.js"
import {
  DeadLetterNotFound,
  HandlerNameTaken,
  HandlerNotSubscribed,
  invalidPayload,
  ReplayFailed
} from "./EventBusErrors.js"
import { Counters } from "./EventBusStats.js"
import type { Envelope, Handler } from "./EventBusSubscriber.js"
import { handlerOf, mailbox, start } from "./EventBusSubscriber.js"
import type {
  BusStats,
  DeadLetter,
  DeadLetterFilter,
  Event,
  EventFilter,
  SubscribeOptions,
  Subscription,
  Topic
} from "./EventBusTopic.js"

export interface Options {
  /** Write every published event to the event log (default true). Dead letters are stored regardless. */
  readonly persist?: boolean
  /** Events a topic's hub holds before backpressure subscribers make publishers wait (default 64). */
  readonly hubCapacity?: number
}

export const defaultOptions = { persist: true, hubCapacity: 64, mailbox: 256, limit: 100 } as const

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0")

/** Unique ids that sort by time, then by creation order within this bus. */
const idMaker = () => {
  let seq = 0
  return (at: number) => `${hex(at, 12)}-${hex(seq++ % 0x1_0000_0000, 8)}-${randomBytes(4).toString("hex")}`
}

const annotations = (handler: Handler, event: Event<unknown>) => ({
  handler: handler.name,
  topic: event.topic,
  eventId: event.id
})

export const make = (options: Options = {}) =>
  Effect.gen(function* () {
    const persist = options.persist ?? defaultOptions.persist
    const hubCapacity = Math.max(1, options.hubCapacity ?? defaultOptions.hubCapacity)
    const repo = yield* EventsRepo
    const counters = new Counters()
    const nextId = idMaker()
    const handlers = new Map<string, Handler>()
    const hubs = yield* Keyed.make({
      name: "event bus topics",
      acquire: (_topic: string, _args: void) =>
        Effect.acquireRelease(PubSub.bounded<Envelope>(hubCapacity), PubSub.shutdown),
      idleTimeToLive: 0,
      capacity: Infinity
    })

    /** The topic's hub, held until `scope` closes (no bound, so never `RegistryFull`). */
    const hubFor = (topic: string, scope: Scope.Scope) => Scope.extend(Effect.orDie(hubs.get(topic, undefined)), scope)

    /** Counts, logs and stores one failure; never fails itself. */
    const deadLetter = Effect.fnUntraced(
      function* (handler: Handler, envelope: Envelope, cause: Cause.Cause<unknown>) {
        const { event, json } = envelope
        counters.count("failures", handler.name)
        yield* Effect.logWarning("event bus: a handler failed; the event is kept as a dead letter", cause)
        const at = yield* Clock.currentTimeMillis
        const id = nextId(at)
        const { name } = handler
        const row = { id, handler: name, topic: event.topic, eventId: event.id, eventAt: event.at, payload: json }
        yield* repo.insertDeadLetter({ ...row, cause: Cause.pretty(cause), at, replayedAt: null }).pipe(
          Effect.zipRight(Effect.sync(() => counters.deadLetters++)),
          Effect.catchAllCause((lost) =>
            Effect.zipRight(
              Effect.logError("event bus: a dead letter could not be stored and is lost", lost),
              Effect.sync(() => counters.deadLettersLost++)
            )
          )
        )
      },
      (effect, handler, envelope) => Effect.annotateLogs(effect, annotations(handler, envelope.event))
    )

    const deliver = (handler: Handler) => (envelope: Envelope) =>
      Effect.flatMap(handler.attempt(envelope.event), (exit) =>
        Exit.isSuccess(exit)
          ? Effect.sync(() => counters.count("delivered", handler.name))
          : deadLetter(handler, envelope, exit.cause)
      )

    /** Validates, logs (when persisting) and publishes; waits while a backpressure subscriber is full. */
    const publish = Effect.fn("EventBus.publish")(function* <A, I>(topic: Topic<A, I>, payload: A) {
      const json = yield* Schema.encode(topic.json)(payload).pipe(Effect.mapError(invalidPayload(topic.name)))
      const at = yield* Clock.currentTimeMillis
      const event: Event<A> = { id: nextId(at), topic: topic.name, payload, at }
      if (persist) yield* repo.insertEvent({ id: event.id, topic: topic.name, payload: json, at })
      yield* Effect.scoped(
        Effect.flatMap(hubs.find(topic.name), (hub) =>
          Option.isSome(hub) ? PubSub.publish(hub.value, { event, json }) : Effect.void
        )
      )
      counters.published++
      return event
    })

    const register = (handler: Handler) =>
      Effect.suspend(() => {
        if (handlers.has(handler.name)) return Effect.fail(new HandlerNameTaken({ handler: handler.name }))
        handlers.set(handler.name, handler)
        return Effect.void
      })

    const unregister = (handler: Handler) =>
      Effect.sync(() => {
        if (handlers.get(handler.name) === handler) handlers.delete(handler.name)
      })

    /** Registers the name and makes the subscriber's scope (which unregisters it on close), atomically. */
    const open = (handler: Handler, parent: Scope.Scope) =>
      Effect.uninterruptible(
        Effect.gen(function* () {
          yield* register(handler)
          const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
          yield* Scope.addFinalizer(scope, unregister(handler))
          return scope
        })
      )

    /** Starts a subscriber whose fibers live in the caller's scope (or until `unsubscribe`). */
    const subscribe = Effect.fn("EventBus.subscribe")(function* <A, I, E, R>(
      topic: Topic<A, I>,
      run: (event: Event<A>) => Effect.Effect<void, E, R>,
      options: SubscribeOptions
    ) {
      const handler = yield* handlerOf(topic, run, options)
      const scope = yield* open(handler, yield* Effect.scope)
      const onDrop = Effect.sync(() => counters.count("dropped", handler.name))
      const overflow = options.overflow ?? "backpressure"
      const box = yield* mailbox(options.mailbox ?? defaultOptions.mailbox, overflow, onDrop)
      yield* start(yield* hubFor(topic.name, scope), box, deliver(handler), scope)
      const subscription: Subscription = {
        name: handler.name,
        topic: topic.name,
        pending: box.size,
        unsubscribe: Scope.close(scope, Exit.void)
      }
      return subscription
    })

    const replayTo = Effect.fnUntraced(function* (handler: Handler, letter: DeadLetterRow) {
      const payload = yield* handler.decode(letter.payload)
      const exit = yield* handler.attempt({ id: letter.eventId, topic: letter.topic, payload, at: letter.eventAt })
      if (Exit.isSuccess(exit)) return counters.count("delivered", handler.name)
      counters.count("failures", handler.name)
      yield* Effect.logWarning("event bus: a replayed dead letter failed again", exit.cause).pipe(
        Effect.annotateLogs({ handler: handler.name, topic: letter.topic, eventId: letter.eventId })
      )
      return yield* new ReplayFailed({
        deadLetterId: letter.id,
        handler: handler.name,
        reason: Cause.pretty(exit.cause)
      })
    })

    /** Runs a dead letter through its (live) handler again; on success marks it replayed. */
    const replay = Effect.fn("EventBus.replay")(function* (id: string) {
      const found = yield* repo.deadLetter(id)
      if (found._tag === "None") return yield* new DeadLetterNotFound({ id })
      const letter = found.value
      const handler = handlers.get(letter.handler)
      if (handler === undefined || handler.topic !== letter.topic) {
        return yield* new HandlerNotSubscribed({ handler: letter.handler, topic: letter.topic })
      }
      yield* replayTo(handler, letter)
      yield* repo.markReplayed(id, yield* Clock.currentTimeMillis)
    })

    /** Dead letters, oldest first. */
    const deadLetters = (filter: DeadLetterFilter = {}): Effect.Effect<ReadonlyArray<DeadLetter>, StorageError> =>
      repo.deadLetters({ ...filter, limit: filter.limit ?? defaultOptions.limit })

    /** The event log of one topic in a time range, oldest first, decoded with the topic's schema. */
    const events = Effect.fn("EventBus.events")(function* <A, I>(topic: Topic<A, I>, filter: EventFilter = {}) {
      const rows = yield* repo.events({ ...filter, topic: topic.name, limit: filter.limit ?? defaultOptions.limit })
      const decode = Schema.decode(topic.json)
      return yield* Effect.forEach(rows, (row) =>
        decode(row.payload).pipe(
          Effect.mapError(invalidPayload(topic.name)),
          Effect.map((payload): Event<A> => ({ id: row.id, topic: row.topic, payload, at: row.at }))
        )
      )
    })

    return {
      publish,
      subscribe,
      replay,
      deadLetters,
      events,
      stats: Effect.map(hubs.entries, (live): BusStats => ({ ...counters.snapshot(), topics: live.map(([t]) => t) }))
    } as const
  })

/** `SLUICE_BUS_PERSIST` (true), `SLUICE_BUS_HUB_CAPACITY` (64). */
export const config: Config.Config<Options> = Config.all({
  persist: Config.boolean("SLUICE_BUS_PERSIST").pipe(Config.withDefault(defaultOptions.persist)),
  hubCapacity: Config.integer("SLUICE_BUS_HUB_CAPACITY").pipe(Config.withDefault(defaultOptions.hubCapacity))
})

/** The event bus; `Default` uses `defaultOptions` and needs an `SqlClient` (the Store layer). */
export class EventBus extends Effect.Service<EventBus>()("sluice/EventBus", {
  scoped: make(),
  dependencies: [EventsRepo.Default]
}) {
  /** A bus with the given options. */
  static layer = (options: Options) =>
    Layer.scoped(EventBus, Effect.map(make(options), EventBus.make)).pipe(Layer.provide(EventsRepo.Default))
  /** A bus with the options of `config`. */
  static layerConfig = Layer.unwrapEffect(Effect.map(config, EventBus.layer))
}
