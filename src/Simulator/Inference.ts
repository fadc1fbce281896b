/**
 * Answers a planned chat or generate request with real time passing, per the latency model:
 * fault draw -> slot lease (and load) -> fixed request cost + prompt evaluation -> one chunk per output token.
 *
 * Streaming sends nothing (not even the status) until the first chunk is due, like Ollama. Tokens are due
 * on a fixed schedule measured from the start of generation (deadline-based sleeps, so timer overshoot does
 * not accumulate). When a token costs less than ~2 ms, tokens are grouped so that each sleep is at least
 * 2 ms (a timer per token would then cost more than it models); with zero cost everything goes in one write.
 * Each group's lines are built as strings and encoded once; the body is a timer-driven `TokenStream`
 * (see TokenStream.ts for why it is not an Effect Stream).
 */
import type { HttpServerResponse } from "@effect/platform"
import { HttpServerResponse as Response } from "@effect/platform"
import { Effect } from "effect"
import type { Scope } from "effect"
import type { State } from "./State.js"
import { injectFault, jitterFactor, lease } from "./State.js"
import type { FaultKind } from "./Faults.js"
import { midStreamErrorMessage } from "./Faults.js"
import type { Plan, Shape } from "./Plan.js"
import type { ModelConfig } from "./SimulatorConfig.js"
import type { Chunk } from "./TokenStream.js"
import { TokenStream } from "./TokenStream.js"
import type { ApiError, ResetConnection } from "./Wire.js"
import { encoder, fail, jsonText, ndjsonContentType, timestamp } from "./Wire.js"

export interface InferenceArgs {
  readonly model: ModelConfig
  /** The model name as the request spelled it (echoed in every chunk). */
  readonly name: string
  readonly keepAliveMs: number
  readonly plan: Plan
  readonly promptTokens: number
  readonly stream: boolean
  readonly shape: Shape
}

interface Timing {
  readonly start: number
  readonly loadNs: number
  readonly promptNs: number
  readonly evalStart: number
  readonly tokenMs: number
}

const minSleepMs = 2

export const nsSince = (start: number): number => Math.max(1, Math.round((performance.now() - start) * 1e6))

const waitUntil = (deadline: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    const ms = deadline - performance.now()
    return ms > 0.5 ? Effect.sleep(ms) : Effect.void
  })

const metrics = (args: InferenceArgs, t: Timing): string =>
  `,"total_duration":${nsSince(t.start)},"load_duration":${t.loadNs},"prompt_eval_count":${args.promptTokens}` +
  `,"prompt_eval_duration":${t.promptNs},"eval_count":${args.plan.evalCount},"eval_duration":${nsSince(t.evalStart)}`

const items = (shape: Shape, plan: Plan): Array<string> => {
  const out = plan.thinking.map((t) => shape.delta("thinking", t))
  for (const t of plan.content) out.push(shape.delta("content", t))
  if (plan.toolCall !== undefined) out.push(shape.toolCall(plan.toolCall))
  return out
}

const groupSize = (count: number, tokenMs: number, fault: FaultKind | undefined): number => {
  const size = tokenMs >= minSleepMs ? 1 : tokenMs <= 0 ? count : Math.ceil(minSleepMs / tokenMs)
  const needsMiddle = fault === "malformed" || fault === "midStreamError"
  return Math.max(1, needsMiddle && count >= 2 ? Math.min(size, Math.ceil(count / 2)) : size)
}

const streamed = (args: InferenceArgs, t: Timing, fault: FaultKind | undefined) =>
  Effect.suspend(() => {
    const lines = items(args.shape, args.plan)
    const size = groupSize(lines.length, t.tokenMs, fault)
    const groups: Array<Array<string>> = []
    for (let i = 0; i < lines.length; i += size) groups.push(lines.slice(i, i + size))
    const prefix = `{"model":${JSON.stringify(args.name)},"created_at":"`
    const encode = (group: ReadonlyArray<string>, extra = ""): Uint8Array => {
      const head = prefix + timestamp() + '"'
      let text = extra === "" ? "" : head + extra + "\n"
      for (const line of group) text += head + line + "\n"
      return encoder.encode(text)
    }
    const due = (i: number) => t.evalStart + Math.min((i + 1) * size, lines.length) * t.tokenMs
    const mid = Math.floor(groups.length / 2)
    const sent = fault === "midStreamError" ? groups.slice(0, Math.max(1, mid)) : groups
    const last = (): Uint8Array =>
      fault === "midStreamError"
        ? encoder.encode(JSON.stringify({ error: midStreamErrorMessage }) + "\n")
        : encode([args.shape.final(args.plan.doneReason, metrics(args, t))])
    const chunkAt = (i: number): Chunk | undefined => {
      if (i > sent.length) return undefined
      if (i === sent.length) return { due: 0, bytes: last }
      const extra = fault === "malformed" && i === mid ? `,"message":{"role":` : ""
      return { due: due(i), bytes: () => encode(sent[i]!, extra) }
    }
    return Effect.as(waitUntil(due(0)), Response.raw(new TokenStream(chunkAt), { contentType: ndjsonContentType }))
  })

const whole = (args: InferenceArgs, t: Timing, fault: FaultKind | undefined) =>
  Effect.gen(function* () {
    const count = args.plan.thinking.length + args.plan.content.length + (args.plan.toolCall === undefined ? 0 : 1)
    yield* waitUntil(t.evalStart + count * t.tokenMs)
    if (fault === "midStreamError") return yield* fail(500, midStreamErrorMessage)
    const body =
      `{"model":${JSON.stringify(args.name)},"created_at":"${timestamp()}"` +
      args.shape.whole(args.plan, metrics(args, t))
    return jsonText(fault === "malformed" ? body.slice(0, Math.floor(body.length / 2)) : body)
  })

/** Draws the fault, leases a slot (in the request's Scope), evaluates the prompt and answers. */
export const answer = (
  state: State,
  args: InferenceArgs
): Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError | ResetConnection, Scope.Scope> =>
  Effect.gen(function* () {
    const start = performance.now()
    const fault = yield* injectFault(state)
    const loadNs = yield* lease(state, args.model, args.keepAliveMs)
    const factor = jitterFactor(state, args.model)
    const promptStart = performance.now()
    const fixedMs = args.model.requestMs ?? 0
    yield* waitUntil(promptStart + (fixedMs + args.promptTokens * args.model.promptTokenMs) * factor)
    const evalStart = performance.now()
    const timing = {
      start,
      loadNs,
      promptNs: nsSince(promptStart),
      evalStart,
      tokenMs: args.model.outputTokenMs * factor
    }
    return args.stream ? yield* streamed(args, timing, fault) : yield* whole(args, timing, fault)
  })
