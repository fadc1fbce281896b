/**
 * Breaker gossip through the shared Redis (docs/scale-out.md): what one instance learns of a dead backend reaches
 * the others, so they stop sending it calls without each paying its own failures; a successful probe is shared too.
 * `Llm/CircuitBreaker.ts` decides what is news and what to do with it; this module only carries it.
 *
 * Choices:
 * - One pub/sub channel, `<prefix>breaker`, with a JSON message `{ from, backend, state, openForMs }`; an
 *   instance ignores its own messages (`from`: a random id per connection, i.e. per process).
 * - Beside the message, a key `<prefix>breaker:<backend>` with PX = the open period: a breaker made later (an
 *   instance starting while the backend is dead) reads it once (`recall`), and every breaker of the process reads
 *   it again each time the subscription is in place (after a reconnection: pub/sub is at most once); a close
 *   deletes it.
 * - Breakers are listened to weakly (WeakRef): the registry of an engine's breakers needs no unsubscribe, and a
 *   breaker dropped with its engine is forgotten. The subscription lives as long as the connection.
 * - Redis away: nothing is shared, each instance's breakers work on their own evidence (the fallback); a failed
 *   publish is counted in `sluice_redis_errors_total{use="breaker"}` only.
 */
import { Effect, Metric, Option } from "effect"
import { randomUUID } from "node:crypto"
import * as Metrics from "../Observability/Metrics.js"
import type { Connection } from "./Redis.js"

/** One instance's news about a backend: its breaker opened (dead) for `openForMs`, or closed after a probe. */
export interface News {
  readonly backend: string
  readonly state: "open" | "closed"
  readonly openForMs?: number | undefined
}

export type Listener = (news: News) => void

export interface Gossip {
  /** Tells the other instances; never fails. */
  readonly publish: (news: News) => Effect.Effect<void>
  /** Calls `listener` (held weakly: keep a reference) with the other instances' news of `backend`. */
  readonly join: (backend: string, listener: Listener) => void
  /** The ms the backend's breaker has left open elsewhere, if another instance opened it. */
  readonly recall: (backend: string) => Effect.Effect<Option.Option<number>>
}

const sent = Metric.tagged(Metrics.breakerGossip, "direction", "sent")
const received = Metric.tagged(Metrics.breakerGossip, "direction", "received")

const parse = (message: string): (News & { readonly from: string }) | undefined => {
  try {
    const news = JSON.parse(message) as Record<string, unknown>
    if (typeof news.from !== "string" || typeof news.backend !== "string") return undefined
    if (news.state !== "open" && news.state !== "closed") return undefined
    const openForMs = typeof news.openForMs === "number" ? news.openForMs : undefined
    return { from: news.from, backend: news.backend, state: news.state, openForMs }
  } catch {
    return undefined
  }
}

const make = (connection: Connection): Effect.Effect<Gossip> =>
  Effect.gen(function* () {
    const from = randomUUID()
    const channel = `${connection.prefix}breaker`
    const keyOf = (backend: string) => `${connection.prefix}breaker:${backend}`
    const listeners = new Map<string, Set<WeakRef<Listener>>>()
    const deliver = (news: News) => {
      const set = listeners.get(news.backend)
      for (const ref of set ?? []) {
        const listener = ref.deref()
        if (listener === undefined) set!.delete(ref)
        else listener(news)
      }
      if (set?.size === 0) listeners.delete(news.backend)
    }
    const recall = (backend: string) =>
      connection
        .run("breaker", (client) => client.pttl(keyOf(backend)))
        .pipe(
          Effect.map((ms) => (ms > 0 ? Option.some(ms) : Option.none())),
          Effect.tap((left) => (Option.isSome(left) ? Metric.increment(received) : Effect.void)),
          Effect.orElseSucceed(() => Option.none<number>())
        )
    // what was published before the subscription was in place (first, or after a reconnection) is in the keys
    const catchUp = Effect.suspend(() =>
      Effect.forEach(
        [...listeners.keys()],
        (backend) =>
          Effect.map(recall(backend), (left) => {
            if (Option.isSome(left)) deliver({ backend, state: "open", openForMs: left.value })
          }),
        { discard: true }
      )
    )
    yield* connection.subscribe(
      channel,
      (message) => {
        const news = parse(message)
        if (news === undefined || news.from === from) return
        received.unsafeUpdate(1, [])
        deliver(news)
      },
      () => Effect.runFork(catchUp)
    )
    const publish = (news: News) =>
      connection
        .run("breaker", (client) => {
          const batch = client.pipeline()
          if (news.state === "open") batch.set(keyOf(news.backend), from, "PX", Math.max(1, news.openForMs ?? 1))
          else batch.del(keyOf(news.backend))
          return batch.publish(channel, JSON.stringify({ from, ...news })).exec()
        })
        .pipe(Effect.zipRight(Metric.increment(sent)), Effect.ignore)
    const join = (backend: string, listener: Listener) => {
      const set = listeners.get(backend) ?? new Set()
      if (set.size === 0) listeners.set(backend, set)
      set.add(new WeakRef(listener))
    }
    return { publish, join, recall } satisfies Gossip
  })

const byConnection = new WeakMap<Connection, Gossip>()

/** The gossip over `connection`: one per connection (one subscription per process), made on first use. */
export const of = (connection: Connection): Effect.Effect<Gossip> =>
  Effect.suspend(() => {
    const known = byConnection.get(connection)
    if (known !== undefined) return Effect.succeed(known)
    return Effect.map(make(connection), (gossip) => {
      const raced = byConnection.get(connection)
      if (raced !== undefined) return raced
      byConnection.set(connection, gossip)
      return gossip
    })
  })
