/**
 * How agents message each other: each agent name has a topic `agent.<name>` on the EventBus, and a running
 * episode keeps an inbox subscribed to it. Events arriving between ticks queue up; the next tick observes them
 * all (`drain`) and puts them in its prompt.
 *
 * Choices:
 * - One topic per recipient rather than one shared topic filtered by recipient: an agent only receives its own
 *   mail, and the event log keeps each agent's mail under its own topic.
 * - Subscribers only see events published after they subscribed (EventBus semantics), so `Agent.runAll` opens
 *   every inbox before the first tick of any of its agents. Mail sent while no episode of the agent runs is in
 *   the event log but not delivered.
 * - The handler only enqueues (an unbounded queue), so it never fails and never holds a publisher back.
 * - Mail drained by a tick that is then lost in a crash is lost with it (the tick in flight).
 */
import { Effect, Queue, Schema } from "effect"
import { randomUUID } from "node:crypto"
import type { EventBus } from "./EventBus.js"
import { topic, type Topic } from "./EventBusTopic.js"

/** One message from an agent (or anyone publishing) to an agent. */
export const AgentMessage = Schema.Struct({
  from: Schema.String,
  to: Schema.String,
  text: Schema.String,
  /** The sender's episode, when an agent sent it. */
  episode: Schema.optional(Schema.String)
})
export type AgentMessage = typeof AgentMessage.Type

/** The topic of `agent`'s inbox. */
export const topicOf = (agent: string): Topic<AgentMessage, typeof AgentMessage.Encoded> =>
  topic(`agent.${agent}`, AgentMessage)

export interface Inbox {
  /** Everything received since the last drain, oldest first. */
  readonly drain: Effect.Effect<ReadonlyArray<AgentMessage>>
}

/** Subscribes `agent`'s inbox for the caller's scope. */
export const open = (bus: EventBus, agent: string) =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<AgentMessage>()
    yield* bus.subscribe(topicOf(agent), (event) => Queue.offer(queue, event.payload), {
      name: `agent-inbox:${agent}:${randomUUID().slice(0, 8)}`
    })
    const inbox: Inbox = { drain: Effect.map(Queue.takeAll(queue), (chunk) => Array.from(chunk)) }
    return inbox
  })
