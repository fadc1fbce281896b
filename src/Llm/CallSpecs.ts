/**
 * The call spec of each kind of engine call (chat, generate, embed): what it sends, its cache key, how many model
 * tokens its answer used, whether the embedding batcher takes it, and the answer a configured `default` fallback
 * gives (a normal-looking reply, so existing clients need no special case).
 *
 * Choices:
 * - The spec carries what differs by kind as typed functions (`key`, `batchable`), so the stages (CallUnary.ts,
 *   CallStream.ts) stay generic without casting a request or an answer to a kind's type.
 */
import type { ChatRequest, ChatResponse } from "../Domain/Chat.js"
import type { EmbedRequest, EmbedResponse } from "../Domain/Embed.js"
import type { GenerateRequest, GenerateResponse } from "../Domain/Generate.js"
import type { LlmError, OllamaError } from "../Domain/LlmError.js"
import type { OllamaClient } from "../Ollama/OllamaClient.js"
import type { Effect, Stream } from "effect"
import { keyOf } from "./CacheKey.js"
import * as EmbedBatcher from "./EmbedBatcher.js"

export interface Spec<Req, A> {
  readonly method: string
  /** The request's response-cache key (CacheKey.ts). */
  readonly key: (req: Req) => string
  readonly run: (client: OllamaClient.Service, req: Req) => Effect.Effect<A, OllamaError>
  readonly tokens: (answer: A) => number
  /** The chunks of a default reply, or undefined when the kind has none (embeddings). */
  readonly reply: ((req: Req, content: string) => ReadonlyArray<A>) | undefined
  /** One whole answer from stream chunks (a default reply to a unary call). */
  readonly whole: (chunks: ReadonlyArray<A>) => A
  /**
   * How the embedding batcher answers the request, when it may join it with others (single-text embeddings,
   * EmbedBatcher.ts); undefined for every other request.
   */
  readonly batchable?: (req: Req) => ((batcher: EmbedBatcher.EmbedBatcher) => Effect.Effect<A, LlmError>) | undefined
}

export interface StreamSpec<Req, A> extends Spec<Req, A> {
  readonly open: (client: OllamaClient.Service, req: Req) => Stream.Stream<A, OllamaError>
  readonly isLast: (chunk: A) => boolean
}

const tokens = (a: { readonly prompt_eval_count?: number; readonly eval_count?: number }) =>
  (a.prompt_eval_count ?? 0) + (a.eval_count ?? 0)

const now = () => new Date().toISOString()

const chatChunks = (req: ChatRequest, content: string): ReadonlyArray<ChatResponse> => {
  const base = { model: req.model, created_at: now() }
  return [
    { ...base, message: { role: "assistant", content }, done: false },
    { ...base, message: { role: "assistant", content: "" }, done: true, done_reason: "stop" }
  ]
}

const generateChunks = (req: GenerateRequest, content: string): ReadonlyArray<GenerateResponse> => {
  const base = { model: req.model, created_at: now() }
  return [
    { ...base, response: content, done: false },
    { ...base, response: "", done: true, done_reason: "stop" }
  ]
}

/** A whole (non-streamed) reply from its chunks: the text joined into the last chunk. */
export const wholeChat = (chunks: ReadonlyArray<ChatResponse>): ChatResponse => {
  const last = chunks[chunks.length - 1]!
  const content = chunks.map((c) => c.message.content).join("")
  return { ...last, message: { ...last.message, content } }
}

export const wholeGenerate = (chunks: ReadonlyArray<GenerateResponse>): GenerateResponse => {
  const last = chunks[chunks.length - 1]!
  return { ...last, response: chunks.map((c) => c.response).join("") }
}

export const chat: StreamSpec<ChatRequest, ChatResponse> = {
  method: "chat",
  key: (req) => keyOf("chat", req),
  run: (client, req) => client.chat(req),
  open: (client, req) => client.chatStream(req),
  isLast: (chunk) => chunk.done,
  tokens,
  reply: chatChunks,
  whole: wholeChat
}

export const generate: StreamSpec<GenerateRequest, GenerateResponse> = {
  method: "generate",
  key: (req) => keyOf("generate", req),
  run: (client, req) => client.generate(req),
  open: (client, req) => client.generateStream(req),
  isLast: (chunk) => chunk.done,
  tokens,
  reply: generateChunks,
  whole: wholeGenerate
}

export const embed: Spec<EmbedRequest, EmbedResponse> = {
  method: "embed",
  key: (req) => keyOf("embed", req),
  run: (client, req) => client.embed(req),
  tokens: (a) => a.prompt_eval_count ?? 0,
  reply: undefined,
  whole: (chunks) => chunks[chunks.length - 1]!,
  batchable: (req) => {
    const one = EmbedBatcher.single(req)
    return one === undefined ? undefined : (batcher) => batcher.embed(one)
  }
}
