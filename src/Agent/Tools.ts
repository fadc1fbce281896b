/**
 * The tools agents call: a `Tool` is a name, a description, a Schema for its arguments (sent to the model as
 * JSON Schema) and an effect. The `ToolRegistry` holds the built-ins (`remember`, `recall`, `publish`,
 * `finish`) and whatever a user adds with `ToolRegistry.layerWith(tools)`.
 *
 * Choices:
 * - A model's call never crashes a tick: an unknown tool, arguments that fail the tool's schema, or a tool's
 *   `ToolError` become a `role: "tool"` message with the error text, and the model goes on. Only
 *   `BudgetExceeded` (a tool that calls the engine inside the tick's budget) ends the tick.
 * - Arguments are decoded with the tool's schema (excess properties ignored, as models add some); the result is
 *   sent back as text (strings as they are, anything else as JSON).
 * - A user tool may need services: `layerWith` captures them when the layer is built, so the registry's tools
 *   need nothing at call time. A user tool with a built-in's name replaces the built-in.
 */
import { Context, Effect, JSONSchema, Layer, Option, ParseResult, Schema } from "effect"
import type { Message, Tool as ChatTool, ToolCall } from "../Domain/Chat.js"
import type { BudgetExceeded } from "../Domain/LlmError.js"
import { topicOf } from "./AgentInbox.js"
import type { ToolCallRecord } from "../Domain/Episode.js"
import { EventBus } from "./EventBus.js"
import { VectorMemory } from "./VectorMemory.js"

/** A tool's own failure; the model sees its `reason`. */
export class ToolError extends Schema.TaggedError<ToolError>()("ToolError", {
  tool: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.tool}: ${this.reason}`
  }
}

/** What a tool knows about the call it serves. */
export interface ToolContext {
  readonly agent: string
  readonly episodeId: string
  readonly tick: number
  readonly memory: {
    readonly namespace: string
    readonly recallK: number
    readonly embeddingModel: string | undefined
  }
  /** Ends the episode as completed with `result` once this tick is committed. */
  readonly finish: (result: string) => Effect.Effect<void>
}

export interface Tool<A = any, I = any, R = never> {
  readonly name: string
  readonly description: string
  readonly parameters: Schema.Schema<A, I, never>
  readonly run: (args: A, context: ToolContext) => Effect.Effect<unknown, ToolError | BudgetExceeded, R>
}

/** Declares a tool (the identity, for type inference of `args`). */
export const make = <A, I, R = never>(tool: Tool<A, I, R>): Tool<A, I, R> => tool

/** The tool as the model sees it: its JSON Schema from `parameters`. */
export const toChatTool = (tool: Tool): ChatTool => {
  const { $schema: _, ...parameters } = JSONSchema.make(tool.parameters) as unknown as Record<string, unknown>
  return { type: "function", function: { name: tool.name, description: tool.description, parameters } }
}

/** Any failure of a memory, bus or engine call, as a ToolError; BudgetExceeded ends the tick instead. */
const toolFailure =
  (tool: string) =>
  <A, R>(
    effect: Effect.Effect<A, { readonly _tag: string; readonly message: string }, R>
  ): Effect.Effect<A, ToolError | BudgetExceeded, R> =>
    Effect.catchAll(effect, (error): Effect.Effect<never, ToolError | BudgetExceeded> =>
      error._tag === "BudgetExceeded"
        ? Effect.fail(error as BudgetExceeded)
        : Effect.fail(new ToolError({ tool, reason: error.message }))
    )

const described = (description: string) => Schema.String.annotations({ description })

/** `remember`, `recall`, `publish` and `finish`. */
export const builtins = Effect.gen(function* () {
  const memory = yield* VectorMemory
  const bus = yield* EventBus
  const remember = make({
    name: "remember",
    description: "Store a note in long-term memory; later ticks and episodes can recall it.",
    parameters: Schema.Struct({ text: described("what to remember") }),
    run: ({ text }, ctx) =>
      memory
        .remember({
          agent: ctx.agent,
          namespace: ctx.memory.namespace,
          text,
          metadata: { episode: ctx.episodeId, tick: ctx.tick, source: "tool" },
          ...(ctx.memory.embeddingModel === undefined ? {} : { model: ctx.memory.embeddingModel })
        })
        .pipe(
          Effect.map((m) => `remembered (${m.id})`),
          toolFailure("remember")
        )
  })
  const recall = make({
    name: "recall",
    description: "Search long-term memory for notes related to a query; returns the closest ones.",
    parameters: Schema.Struct({ query: described("what to look for") }),
    run: ({ query }, ctx) =>
      memory.recall({ namespace: ctx.memory.namespace, query, k: Math.max(1, ctx.memory.recallK) }).pipe(
        Effect.map((hits) => hits.map((h) => ({ text: h.memory.text, score: Math.round(h.score * 1000) / 1000 }))),
        toolFailure("recall")
      )
  })
  const publish = make({
    name: "publish",
    description: "Send a message to another agent by name; it reads the message on its next tick.",
    parameters: Schema.Struct({ to: described("the recipient agent's name"), text: described("the message") }),
    run: ({ to, text }, ctx) =>
      bus
        .publish(topicOf(to), { from: ctx.agent, to, text, episode: ctx.episodeId })
        .pipe(Effect.as(`sent to ${to}`), toolFailure("publish"))
  })
  const finish = make({
    name: "finish",
    description: "End the episode: the goal is reached (or cannot be). The result is the episode's answer.",
    parameters: Schema.Struct({ result: described("the outcome, for whoever gave the goal") }),
    run: ({ result }, ctx) => Effect.as(ctx.finish(result), "finished")
  })
  return [remember, recall, publish, finish] as ReadonlyArray<Tool>
})

export interface Registry {
  readonly get: (name: string) => Option.Option<Tool>
  readonly names: ReadonlyArray<string>
}

export class ToolRegistry extends Context.Tag("sluice/ToolRegistry")<ToolRegistry, Registry>() {
  /** The built-ins plus `tools`, whose services are captured when the layer is built. */
  static layerWith = <R = never>(
    tools: ReadonlyArray<Tool<any, any, R>>
  ): Layer.Layer<ToolRegistry, never, VectorMemory | EventBus | R> =>
    Layer.effect(
      ToolRegistry,
      Effect.gen(function* () {
        const context = yield* Effect.context<R>()
        const provided = tools.map((tool): Tool => ({
          ...tool,
          run: (args, ctx) => Effect.provide(tool.run(args, ctx), context)
        }))
        const byName = new Map([...(yield* builtins), ...provided].map((tool) => [tool.name, tool] as const))
        return { get: (name) => Option.fromNullable(byName.get(name)), names: [...byName.keys()] }
      })
    )

  /** The built-in tools only. */
  static layer: Layer.Layer<ToolRegistry, never, VectorMemory | EventBus> = ToolRegistry.layerWith([])
}

/** A tool call's record for the tick and the message the model gets back. */
export interface Outcome {
  readonly record: ToolCallRecord
  readonly message: Message
}

const render = (value: unknown): string => (typeof value === "string" ? value : (JSON.stringify(value) ?? "null"))

const decodeArgs = (tool: Tool, args: unknown) =>
  Schema.decodeUnknown(tool.parameters, { errors: "all", onExcessProperty: "ignore" })(args).pipe(
    Effect.mapError(
      (error) =>
        new ToolError({
          tool: tool.name,
          reason: `invalid arguments: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
        })
    )
  )

/** Runs one call of the model among the `offered` tools; only BudgetExceeded fails. */
export const call = (
  registry: Registry,
  offered: ReadonlyArray<string>,
  toolCall: ToolCall,
  context: ToolContext
): Effect.Effect<Outcome, BudgetExceeded> => {
  const { name, arguments: args } = toolCall.function
  const found = offered.includes(name) ? registry.get(name) : Option.none<Tool>()
  const run: Effect.Effect<unknown, ToolError | BudgetExceeded> = Option.match(found, {
    onNone: () =>
      Effect.fail(new ToolError({ tool: name, reason: `unknown tool; the tools are: ${offered.join(", ")}` })),
    onSome: (tool) => Effect.flatMap(decodeArgs(tool, args), (decoded) => tool.run(decoded, context))
  })
  const id = toolCall.id === undefined ? {} : { id: toolCall.id }
  const reply = (content: string): Message => ({
    role: "tool",
    content,
    tool_name: name,
    ...(toolCall.id === undefined ? {} : { tool_call_id: toolCall.id })
  })
  return run.pipe(
    Effect.map((result): Outcome => ({
      record: { ...id, name, arguments: args, result },
      message: reply(render(result))
    })),
    Effect.catchTag("ToolError", (error) =>
      Effect.succeed<Outcome>({
        record: { ...id, name, arguments: args, result: null, error: error.reason },
        message: reply(`error: ${error.message}`)
      })
    )
  )
}
