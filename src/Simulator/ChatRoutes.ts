/**
 * `POST /api/chat` and `POST /api/generate`: validation with Ollama's status codes and messages, the
 * empty-prompt load/unload answers (single objects, no fault injection), then the planned reply.
 */
import type { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import type { Scope } from "effect"
import { ChatRequest } from "../Domain/Chat.js"
import type { Format, Think } from "../Domain/Common.js"
import { GenerateRequest } from "../Domain/Generate.js"
import type { State } from "./State.js"
import { findModel, keepAliveMs, notFoundQuoted, warm } from "./State.js"
import { answer } from "./Inference.js"
import { chatShape, generateShape, plan } from "./Plan.js"
import type { ModelConfig } from "./SimulatorConfig.js"
import { normalizeName } from "./SimulatorConfig.js"
import { fnv1a, promptTokens, words } from "./Text.js"
import type { ApiError, ResetConnection } from "./Wire.js"
import { fail, jsonText, readBody, timestamp } from "./Wire.js"

type Handler = Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  ApiError | ResetConnection,
  HttpServerRequest.HttpServerRequest | Scope.Scope
>

const readChat = readBody(ChatRequest)
const readGenerate = readBody(GenerateRequest)
const thinkLevels = new Set(["low", "medium", "high", "max"])

/** Whether the reply thinks: `think` unset follows the model; asking a non-thinking model is a 400. */
const thinks = (model: ModelConfig, name: string, think: Think | undefined): Effect.Effect<boolean, ApiError> => {
  const can = model.capabilities.includes("thinking")
  if (think === undefined || think === false) return Effect.succeed(think === undefined && can)
  if (typeof think === "string" && !thinkLevels.has(think)) {
    return fail(400, `invalid think value: "${think}" (must be "low", "medium", "high" or "max")`)
  }
  return can ? Effect.succeed(true) : fail(400, `"${name}" does not support thinking`)
}

const checkFormat = (format: Format | undefined): Effect.Effect<unknown, ApiError> => {
  if (format === undefined || format === "" || format === "json" || typeof format === "object") {
    return Effect.succeed(format === "" ? undefined : format)
  }
  return fail(400, `invalid format: ${JSON.stringify(format)}; expected "json" or a valid JSON Schema object`)
}

const unsupported = (model: ModelConfig, what: string) =>
  fail(400, `registry.ollama.ai/library/${model.name} does not support ${what}`)

/** The answer to an empty prompt: load the model (`done_reason` "load"), or unload it with keep_alive 0. */
const loadOrUnload = (state: State, model: ModelConfig, name: string, keepAlive: number, text: string) =>
  Effect.gen(function* () {
    const unload = keepAlive === 0
    if (unload) yield* state.scheduler.unload(model.name)
    else yield* warm(state, model, keepAlive)
    const reason = unload ? "unload" : "load"
    return jsonText(
      `{"model":${JSON.stringify(name)},"created_at":"${timestamp()}",${text},"done":true,"done_reason":"${reason}"}`
    )
  })

const requestKey = (model: ModelConfig, parts: ReadonlyArray<string>, seed: unknown, format: unknown): string =>
  `${normalizeName(model.name)}\u0001${parts.join("\u0001")}\u0001${String(seed)}\u0001${JSON.stringify(format) ?? ""}`

export const chat = (state: State): Handler =>
  Effect.gen(function* () {
    const req = yield* readChat
    if (req.model === "") return yield* fail(400, "model is required")
    const model = yield* findModel(state, req.model, notFoundQuoted)
    if (!model.capabilities.includes("completion")) return yield* fail(400, `"${req.model}" does not support chat`)
    const tools = req.tools ?? []
    if (tools.length > 0 && !model.capabilities.includes("tools")) return yield* unsupported(model, "tools")
    const think = yield* thinks(model, req.model, req.think)
    const format = yield* checkFormat(req.format)
    const keepAlive = yield* keepAliveMs(state, req.keep_alive)
    const messages = req.messages ?? []
    if (messages.length === 0) {
      return yield* loadOrUnload(state, model, req.model, keepAlive, `"message":{"role":"assistant","content":""}`)
    }
    const last = messages[messages.length - 1]!
    const texts = messages.map((m) => m.content)
    const key = requestKey(
      model,
      messages.map((m) => `${m.role}\u0002${m.content}`),
      req.options?.seed,
      format
    )
    const lastUserText = last.role.toLowerCase() === "user" ? last.content : undefined
    const reply = plan({ key, format, think, tools, lastUserText, numPredict: req.options?.num_predict })
    const args = { model, name: req.model, keepAliveMs: keepAlive, plan: reply, promptTokens: promptTokens(texts) }
    return yield* answer(state, { ...args, stream: req.stream ?? true, shape: chatShape })
  })

const tokenIds = (texts: ReadonlyArray<string>): Array<number> => texts.map((t) => fnv1a(t) % 128_000)

export const generate = (state: State): Handler =>
  Effect.gen(function* () {
    const req = yield* readGenerate
    const model = yield* findModel(state, req.model, notFoundQuoted)
    if (!model.capabilities.includes("completion")) return yield* fail(400, `"${req.model}" does not support generate`)
    if (req.raw === true && (req.template !== undefined || req.system !== undefined || req.context !== undefined)) {
      return yield* fail(400, "raw mode does not support template, system, or context")
    }
    if ((req.suffix ?? "") !== "" && !model.capabilities.includes("insert")) return yield* unsupported(model, "insert")
    const think = yield* thinks(model, req.model, req.think)
    const format = yield* checkFormat(req.format)
    const keepAlive = yield* keepAliveMs(state, req.keep_alive)
    const prompt = req.prompt ?? ""
    if (prompt === "") return yield* loadOrUnload(state, model, req.model, keepAlive, `"response":""`)
    const texts = req.raw === true ? [prompt] : [req.system ?? "", prompt]
    const key = requestKey(model, [req.system ?? "", prompt, req.suffix ?? ""], req.options?.seed, format)
    const reply = plan({ key, format, think, tools: [], lastUserText: undefined, numPredict: req.options?.num_predict })
    const context = req.raw === true ? undefined : tokenIds([...words(prompt), ...reply.content])
    const args = { model, name: req.model, keepAliveMs: keepAlive, plan: reply, promptTokens: promptTokens(texts) }
    return yield* answer(state, { ...args, stream: req.stream ?? true, shape: generateShape(context) })
  })
