/**
 * One subscriber's machinery: its mailbox and its two fibers, both living in the subscriber's own scope.
 *
 * topic hub (PubSub) -> forwarder fiber -> mailbox -> worker fiber -> handler
 *
 * Choices:
 * - The hub's strategy applies to all of a topic's subscribers at once, so the per-subscriber policy lives in the
 *   mailbox, which the forwarder fills. `backpressure`: a bounded mailbox; when it is full the forwarder waits,
 *   the hub fills, and publishers wait (after mailbox + 1 + hub capacity pending events). `drop-oldest`: a sliding
 *   mailbox; the forwarder never waits, so this subscriber never holds a publisher.
 * - The mailbox is a `TQueue` so "was it full?" and "offer" are one transaction: every drop is counted exactly.
 * - A handler never runs concurrently with itself: deliveries and replays take its one-permit lock.
 * - The worker hands each event to `deliver`, which never fails (failures become dead letters upstream), so one
 *   bad event never stops the loop.
 */
import type { Exit } from "effect"
import { Effect, PubSub, Queue, Schema, Scope, STM, TQueue } from "effect"
import type { InvalidPayload } from "./EventBusErrors.js"
import { invalidPayload } from "./EventBusErrors.js"
import type { Event, Overflow, SubscribeOptions, Topic } from "./EventBusTopic.js"

/** What travels on a hub: the event and its payload's JSON encoding (kept for dead letters). */
export interface Envelope {
  readonly event: Event<unknown>
  readonly json: string
}

export interface Mailbox {
  readonly offer: (envelope: Envelope) => Effect.Effect<void>
  readonly take: Effect.Effect<Envelope>
  readonly size: Effect.Effect<number>
}

/** A mailbox of `capacity` (at least 1) with its overflow policy; `onDrop` runs once per dropped event. */
export const mailbox = (capacity: number, overflow: Overflow, onDrop: Effect.Effect<void>): Effect.Effect<Mailbox> =>
  Effect.gen(function* () {
    const size = Math.max(1, Math.floor(capacity))
    const queue = yield* overflow === "backpressure" ? TQueue.bounded<Envelope>(size) : TQueue.sliding<Envelope>(size)
    const offer =
      overflow === "backpressure"
        ? (envelope: Envelope) => STM.commit(TQueue.offer(queue, envelope))
        : (envelope: Envelope) =>
            TQueue.isFull(queue).pipe(
              STM.tap(() => TQueue.offer(queue, envelope)),
              STM.commit,
              Effect.flatMap((full) => (full ? onDrop : Effect.void))
            )
    return { offer, take: STM.commit(TQueue.take(queue)), size: STM.commit(TQueue.size(queue)) }
  })

/**
 * Subscribes to `hub` now (events published after this returns are received) and forks the forwarder and the
 * worker into `scope`; closing `scope` stops both and drops what is still queued.
 */
export const start = (
  hub: PubSub.PubSub<Envelope>,
  box: Mailbox,
  deliver: (envelope: Envelope) => Effect.Effect<void>,
  scope: Scope.Scope
): Effect.Effect<void> =>
  Effect.gen(function* () {
    const subscription = yield* Scope.extend(PubSub.subscribe(hub), scope)
    yield* Queue.take(subscription).pipe(Effect.flatMap(box.offer), Effect.forever, Effect.forkIn(scope))
    yield* box.take.pipe(Effect.flatMap(deliver), Effect.forever, Effect.forkIn(scope))
  })

/** A live subscriber as the bus sees it. */
export interface Handler {
  readonly name: string
  readonly topic: string
  /** One run of the handler (serialised with replays, with its timeout); its exit, never a failure. */
  readonly attempt: (event: Event<unknown>) => Effect.Effect<Exit.Exit<void, unknown>>
  /** Decodes a stored payload with the handler's topic schema. */
  readonly decode: (json: string) => Effect.Effect<unknown, InvalidPayload>
}

/** The bus's view of a subscriber's handler, run in the subscriber's context. */
export const handlerOf = Effect.fnUntraced(function* <A, I, E, R>(
  topic: Topic<A, I>,
  run: (event: Event<A>) => Effect.Effect<void, E, R>,
  options: SubscribeOptions
) {
  const context = yield* Effect.context<R>()
  const lock = yield* Effect.makeSemaphore(1)
  const timeout = options.timeout
  const bounded = <X, Y>(effect: Effect.Effect<X, Y>) =>
    timeout === undefined ? effect : Effect.timeout(effect, timeout)
  const handler: Handler = {
    name: options.name,
    topic: topic.name,
    // the hub of `topic.name` only carries payloads validated by that topic's schema
    attempt: (event) => lock.withPermits(1)(Effect.exit(bounded(Effect.provide(run(event as Event<A>), context)))),
    decode: (json) => Schema.decode(topic.json)(json).pipe(Effect.mapError(invalidPayload(topic.name)))
  }
  return handler
})
