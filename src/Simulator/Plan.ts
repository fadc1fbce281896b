/**
 * What a chat or generate request answers, decided up front from the request hash (see Text.ts for the
 * rules): thinking tokens, content tokens or one tool call, the done reason and the eval count. Also the
 * two wire shapes (chat and generate) as string builders, so a stream chunk costs one template, not a
 * JSON.stringify of a whole object.
 */
import type { Tool, ToolCall } from "../Domain/Chat.js"
import {
  chunkString,
  fnv1a,
  jsonAnswer,
  mulberry32,
  replyLength,
  replyTokens,
  thinkingTokens,
  toolCallFor
} from "./Text.js"

export interface PlanInput {
  /** Everything that identifies the request's output: model, messages or prompt, system, seed, format. */
  readonly key: string
  readonly format: unknown
  readonly think: boolean
  readonly tools: ReadonlyArray<Tool>
  /** The text of the last message when it is a user message. */
  readonly lastUserText: string | undefined
  readonly numPredict: number | undefined
}

export interface Plan {
  readonly thinking: ReadonlyArray<string>
  readonly content: ReadonlyArray<string>
  readonly toolCall: ToolCall | undefined
  readonly doneReason: "stop" | "length"
  readonly evalCount: number
}

const contentTokens = (input: PlanInput, random: () => number): Array<string> => {
  const format = input.format
  if (format === "json" || (typeof format === "object" && format !== null)) {
    return chunkString(jsonAnswer(format, random), random)
  }
  return replyTokens(random, replyLength(random))
}

export const plan = (input: PlanInput): Plan => {
  const seed = fnv1a(input.key)
  const thinking = input.think ? thinkingTokens(mulberry32(seed ^ 0x5bd1e995)) : []
  const call =
    input.tools.length > 0 && input.lastUserText !== undefined
      ? toolCallFor(input.tools, input.lastUserText, mulberry32(seed ^ 0x27d4eb2f))
      : undefined
  if (call !== undefined) {
    const callTokens = Math.max(1, Math.ceil(JSON.stringify(call.function).length / 4))
    return { thinking, content: [], toolCall: call, doneReason: "stop", evalCount: thinking.length + callTokens }
  }
  const content = contentTokens(input, mulberry32(seed))
  const total = thinking.length + content.length
  const limit = input.numPredict
  if (limit === undefined || limit <= 0 || total <= limit) {
    return { thinking, content, toolCall: undefined, doneReason: "stop", evalCount: total }
  }
  return {
    thinking: thinking.slice(0, limit),
    content: content.slice(0, Math.max(0, limit - thinking.length)),
    toolCall: undefined,
    doneReason: "length",
    evalCount: limit
  }
}

/**
 * The JSON after `{"model":..,"created_at":".."` of each object an endpoint sends. `metrics` is a
 * pre-built `,"total_duration":..` fragment.
 */
export interface Shape {
  readonly delta: (kind: "content" | "thinking", text: string) => string
  readonly toolCall: (call: ToolCall) => string
  readonly final: (doneReason: string, metrics: string) => string
  readonly whole: (plan: Plan, metrics: string) => string
}

const J = JSON.stringify

export const chatShape: Shape = {
  delta: (kind, text) =>
    kind === "content"
      ? `,"message":{"role":"assistant","content":${J(text)}},"done":false}`
      : `,"message":{"role":"assistant","content":"","thinking":${J(text)}},"done":false}`,
  toolCall: (call) => `,"message":{"role":"assistant","content":"","tool_calls":[${J(call)}]},"done":false}`,
  final: (reason, metrics) =>
    `,"message":{"role":"assistant","content":""},"done":true,"done_reason":"${reason}"${metrics}}`,
  whole: (p, metrics) => {
    const thinking = p.thinking.length > 0 ? `,"thinking":${J(p.thinking.join(""))}` : ""
    const calls = p.toolCall !== undefined ? `,"tool_calls":[${J(p.toolCall)}]` : ""
    const message = `{"role":"assistant","content":${J(p.content.join(""))}${thinking}${calls}}`
    return `,"message":${message},"done":true,"done_reason":"${p.doneReason}"${metrics}}`
  }
}

/** Generate's shape; `context` is the token array sent on the final object (omitted in raw mode). */
export const generateShape = (context: ReadonlyArray<number> | undefined): Shape => {
  const ctx = context === undefined ? "" : `,"context":${J(context)}`
  return {
    delta: (kind, text) =>
      kind === "content"
        ? `,"response":${J(text)},"done":false}`
        : `,"response":"","thinking":${J(text)},"done":false}`,
    toolCall: () => `,"response":"","done":false}`,
    final: (reason, metrics) => `,"response":"","done":true,"done_reason":"${reason}"${ctx}${metrics}}`,
    whole: (p, metrics) => {
      const thinking = p.thinking.length > 0 ? `,"thinking":${J(p.thinking.join(""))}` : ""
      return `,"response":${J(p.content.join(""))}${thinking},"done":true,"done_reason":"${p.doneReason}"${ctx}${metrics}}`
    }
  }
}
