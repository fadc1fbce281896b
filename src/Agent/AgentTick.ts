/**
 * One tick of an agent: recall, think, act, remember, all inside the tick's budget, returning the `Tick` record
 * to commit (the caller commits it, with the episode's ending, in one transaction).
 *
 * The prompt of tick n (what makes runs on the simulator deterministic):
 *
 *   system:  the spec's `system`
 *   system:  "Relevant memories:\n- <text>\n..."            (when memories were recalled)
 *   user:    "Tick <n> of <maxTicks>.\n"
 *            "Messages received since the last tick:\n- from <agent>: <text>\n..."   (or "No new messages.")
 *            "This is the last tick: call finish with your result.\n"                 (on tick maxTicks only)
 *            "Goal: <goal>"
 *   then the model's replies and the tool results of this tick, up to `maxSteps` model calls.
 *
 * The user message ends with the goal, so the simulator's tool-call rule (a tool is called when the last user
 * message contains its name; string arguments are the message's last word) picks tools from the goal or the
 * observed messages, and fills arguments from the goal's last word. The last tick offers only `finish`.
 *
 * Choices:
 * - Chats bypass the response cache: an agent thinking again about the same prompt must think again (its tools
 *   act on a changing world), and every model call must count against the tick's budget.
 * - The budget scope covers recall, the chats, the tools and the remember step: embeddings are engine calls too.
 * - A tick that fails keeps what it did so far (messages, tool calls, usage) for the record: the work runs with
 *   a `Ref` of progress that the record is built from, whatever the exit.
 */
import { Clock, Effect, Either, Option, Ref } from "effect"
import type { Message } from "../Domain/Chat.js"
import type { LlmError } from "../Domain/LlmError.js"
import * as Budget from "../Llm/Budget.js"
import type { Llm } from "../Llm/Llm.js"
import type { AgentMessage } from "./AgentInbox.js"
import { type AgentSpec, limitsOf, namespaceOf } from "./AgentSpec.js"
import type { Tick, ToolCallRecord } from "../Domain/Episode.js"
import * as Tools from "./Tools.js"
import type { Recalled, VectorMemory } from "./VectorMemory.js"
import type { VectorMemoryError } from "./VectorMemoryError.js"

export interface Services {
  readonly llm: Llm
  readonly memory: VectorMemory
  readonly tools: Tools.Registry
}

export interface Input {
  readonly spec: AgentSpec
  readonly goal: string
  readonly episodeId: string
  readonly n: number
  readonly observed: ReadonlyArray<AgentMessage>
}

export interface Result {
  readonly tick: Tick
  /** The `finish` tool's result, when it was called. */
  readonly finished: Option.Option<string>
}

interface Progress {
  readonly recalled: ReadonlyArray<string>
  readonly messages: ReadonlyArray<Message>
  readonly toolCalls: ReadonlyArray<ToolCallRecord>
  readonly finished: Option.Option<string>
  readonly usage: Option.Option<Budget.Usage>
}

const empty: Progress = {
  recalled: [],
  messages: [],
  toolCalls: [],
  finished: Option.none(),
  usage: Option.none()
}

/** The user message of tick `n` (see the module comment). */
export const userMessage = (input: Input): string => {
  const { goal, n, observed, spec } = input
  const mail =
    observed.length === 0
      ? ["No new messages."]
      : ["Messages received since the last tick:", ...observed.map((m) => `- from ${m.from}: ${m.text}`)]
  const last = n >= spec.maxTicks ? ["This is the last tick: call finish with your result."] : []
  return [`Tick ${n} of ${spec.maxTicks}.`, ...mail, ...last, `Goal: ${goal}`].join("\n")
}

/** The tools offered on tick `n`: the spec's and `finish`; only `finish` on the last tick. */
export const offeredTools = (spec: AgentSpec, n: number): ReadonlyArray<string> =>
  n >= spec.maxTicks ? ["finish"] : [...new Set([...spec.tools, "finish"])]

const promptOf = (input: Input, recalled: ReadonlyArray<Recalled>): Array<Message> => [
  ...(input.spec.system === "" ? [] : [{ role: "system", content: input.spec.system }]),
  ...(recalled.length === 0
    ? []
    : [{ role: "system", content: ["Relevant memories:", ...recalled.map((r) => `- ${r.memory.text}`)].join("\n") }]),
  { role: "user", content: userMessage(input) }
]

type TickError = LlmError | VectorMemoryError

/** Runs tick `input.n`; never fails but for interruption (the outcome says how it went). */
export const run = (services: Services, input: Input): Effect.Effect<Result> =>
  Effect.gen(function* () {
    const startedAt = yield* Clock.currentTimeMillis
    const progress = yield* Ref.make(empty)
    const recordUsage = Effect.flatMap(Budget.usage, (chain) =>
      Ref.update(progress, (p) => ({ ...p, usage: Option.fromNullable(chain[0]) }))
    )
    const work = body(services, input, progress).pipe(Effect.ensuring(recordUsage))
    const exit = yield* Effect.either(Budget.scoped("tick", limitsOf(input.spec))(work))
    const done = yield* Ref.get(progress)
    const durationMs = (yield* Clock.currentTimeMillis) - startedAt
    const usage = Option.getOrUndefined(done.usage)
    const failure = Either.isLeft(exit) ? Option.some(exit.left) : Option.none<TickError>()
    const tick: Tick = {
      episodeId: input.episodeId,
      n: input.n,
      startedAt,
      durationMs,
      inputs: input.observed,
      recalled: done.recalled,
      messages: done.messages,
      toolCalls: done.toolCalls,
      tokens: usage?.tokens ?? 0,
      ...(usage === undefined
        ? {}
        : { budget: { calls: usage.calls, tokens: usage.tokens, elapsedMs: usage.elapsedMs } }),
      outcome: Option.match(failure, {
        onNone: () => "ok" as const,
        onSome: (e) => (e._tag === "BudgetExceeded" ? "budget-exceeded" : "error")
      }),
      ...Option.match(failure, { onNone: () => ({}), onSome: (e) => ({ error: `${e._tag}: ${e.message}` }) })
    }
    return { tick, finished: done.finished }
  })

const body = (services: Services, input: Input, progress: Ref.Ref<Progress>) =>
  Effect.gen(function* () {
    const recalled = yield* recall(services, input)
    yield* Ref.update(progress, (p) => ({ ...p, recalled: recalled.map((r) => r.memory.id) }))
    const reply = yield* think(services, input, promptOf(input, recalled), progress)
    yield* remember(services, input, reply)
  })

const recall = (services: Services, input: Input): Effect.Effect<ReadonlyArray<Recalled>, TickError> => {
  const k = input.spec.memory.recallK
  if (k === 0) return Effect.succeed([])
  const query = [input.goal, ...input.observed.map((m) => m.text)].join("\n")
  return services.memory.recall({ namespace: namespaceOf(input.spec), query, k })
}

const remember = (services: Services, input: Input, reply: string): Effect.Effect<void, TickError> => {
  const { spec } = input
  if (!spec.memory.remember || reply.trim() === "") return Effect.void
  return Effect.asVoid(
    services.memory.remember({
      agent: spec.name,
      namespace: namespaceOf(spec),
      text: reply,
      metadata: { episode: input.episodeId, tick: input.n, source: "reply" },
      ...(spec.memory.embeddingModel === undefined ? {} : { model: spec.memory.embeddingModel })
    })
  )
}

/** Chat, run the tool calls, chat again... until a reply without calls, `finish`, or `maxSteps` chats. */
const think = (services: Services, input: Input, prompt: Array<Message>, progress: Ref.Ref<Progress>) =>
  Effect.gen(function* () {
    const { spec } = input
    const offered = offeredTools(spec, input.n)
    const chatTools = offered.flatMap((name) => Option.toArray(Option.map(services.tools.get(name), Tools.toChatTool)))
    const context = toolContext(input, progress)
    const append = (messages: ReadonlyArray<Message>, calls: ReadonlyArray<ToolCallRecord> = []) =>
      Ref.update(progress, (p) => ({
        ...p,
        messages: [...p.messages, ...messages],
        toolCalls: [...p.toolCalls, ...calls]
      }))
    yield* append(prompt)
    let reply = ""
    for (let step = 0; step < spec.maxSteps; step++) {
      const messages = (yield* Ref.get(progress)).messages
      const response = yield* services.llm.chat(
        { model: spec.model, messages, tools: chatTools, stream: false },
        { cache: "bypass" }
      )
      yield* append([response.message])
      const calls = response.message.tool_calls ?? []
      reply = response.message.content
      if (calls.length === 0) break
      const outcomes = yield* Effect.forEach(calls, (c) => Tools.call(services.tools, offered, c, context))
      yield* append(
        outcomes.map((o) => o.message),
        outcomes.map((o) => o.record)
      )
      if (Option.isSome((yield* Ref.get(progress)).finished)) break
    }
    return reply
  })

const toolContext = (input: Input, progress: Ref.Ref<Progress>): Tools.ToolContext => ({
  agent: input.spec.name,
  episodeId: input.episodeId,
  tick: input.n,
  memory: {
    namespace: namespaceOf(input.spec),
    recallK: input.spec.memory.recallK,
    embeddingModel: input.spec.memory.embeddingModel
  },
  finish: (result) => Ref.update(progress, (p) => ({ ...p, finished: Option.some(result) }))
})
