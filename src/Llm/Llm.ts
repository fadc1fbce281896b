/**
 * The engine: every entry point (library, gateway, agents, batch jobs) calls `Llm`. One call goes
 *
 *   ResponseCache (a hit returns here and costs nothing) -> Budget (reserve a call) -> Admission (a miss waits for
 *   a slot reserved on its backend) -> Pipeline (retry across backends within the deadline: rate limit -> breaker
 *   -> slot -> attempt timeout -> OllamaClient) <- Fallback (alternate model, stale cache entry, default reply, or
 *   the typed error)
 *
 * CallUnary.ts and CallStream.ts hold the stages and put them together; CallPolicy.ts decides what a call's
 * options mean, CallSpecs.ts what each kind of call sends. Streams take the same path: a miss streams through
 * while the cache records it; a retry or a fallback only happens before the first chunk reached the caller. See
 * docs/fault-tolerance.md for settings and the failure matrix.
 */
import { Effect } from "effect"
import type { ChatRequest, ChatResponse } from "../Domain/Chat.js"
import type { EmbedRequest, EmbedResponse } from "../Domain/Embed.js"
import type { GenerateRequest, GenerateResponse } from "../Domain/Generate.js"
import type { LlmError } from "../Domain/LlmError.js"
import { Backends } from "./Backends.js"
import * as CallPolicy from "./CallPolicy.js"
import type { CallOptions } from "./CallPolicy.js"
import * as CallSpecs from "./CallSpecs.js"
import * as CallStats from "./CallStats.js"
import * as CallStream from "./CallStream.js"
import * as CallUnary from "./CallUnary.js"
import type { Served } from "./CallUnary.js"
import * as EmbedBatcher from "./EmbedBatcher.js"
import * as Hedge from "./Hedge.js"
import { ResponseCache } from "./ResponseCache.js"

export type { CallOptions, Priority } from "./CallPolicy.js"
export type { Stats } from "./CallStats.js"
export type { Served } from "./CallUnary.js"

export interface Options extends CallPolicy.Options {
  /** The embedding batcher: window (5 ms) and maximum batch (64). */
  readonly batching?: EmbedBatcher.Options
  /** Hedged attempts against stalls (Hedge.ts); `{ budget: 0 }` turns them off. */
  readonly hedge?: Hedge.Options
}

type Unary<Req, A> = (req: Req, options?: CallOptions) => Effect.Effect<A, LlmError>

export class Llm extends Effect.Service<Llm>()("sluice/Llm", {
  scoped: (options: Options = {}) =>
    Effect.gen(function* () {
      const backends = yield* Backends
      const cache = yield* ResponseCache
      const stats = yield* CallStats.make
      const hedger = yield* Hedge.make(options.hedge)
      const policy = CallPolicy.make(options, hedger)
      const upstream: CallUnary.Upstream = { backends, policy, stats }
      const batcher = yield* EmbedBatcher.make(
        (req) => CallUnary.pipeline(upstream, CallSpecs.embed, req, {}),
        options.batching
      )
      const unary = CallUnary.make({ ...upstream, cache, batcher })
      const stream = CallStream.make({ ...upstream, cache })
      const open = CallStream.open({ ...upstream, cache })

      const valueOf =
        <Req, A>(f: (req: Req, call?: CallOptions) => Effect.Effect<Served<A>, LlmError>): Unary<Req, A> =>
        (req, call) =>
          Effect.map(f(req, call), (s) => s.value)

      const chatServed = unary(CallSpecs.chat)
      const chat = valueOf<ChatRequest, ChatResponse>(chatServed)
      const embedServed = unary(CallSpecs.embed)
      const embed = valueOf<EmbedRequest, EmbedResponse>(embedServed)
      /** Many chats at once: concurrent dispatch through the scheduler (chat has no batch endpoint). */
      const chatBatch = (reqs: Iterable<ChatRequest>, call: CallOptions = {}) =>
        Effect.forEach(reqs, (req) => Effect.either(chat(req, { priority: "batch", ...call })), {
          concurrency: "unbounded"
        })
      /**
       * One vector per text, in order. The texts go out in array calls of the batcher's maximum batch (one engine
       * call each: retried, budgeted as one), which costs far less than a call per text (bench/embeddings).
       * The calls bypass the response cache unless `call.cache` says otherwise: an answer of 64 vectors is ~0.5 MB
       * of JSON, so 10,000 texts would push every other entry out of the default 64 MiB cache, and sizing each
       * entry (its JSON) cost about a third of the client's CPU per call; a chunk's key (its exact 64 texts) is
       * hit only by the same call repeated. Single-text `embed` calls stay cached per text.
       */
      const embedMany = (model: string, texts: Iterable<string>, call: CallOptions = {}) => {
        const all = Array.from(texts)
        const size = Math.max(1, options.batching?.maxBatch ?? 64)
        const chunks = Array.from({ length: Math.ceil(all.length / size) }, (_, i) =>
          all.slice(i * size, (i + 1) * size)
        )
        return Effect.map(
          Effect.forEach(chunks, (input) => embed({ model, input }, { priority: "batch", cache: "bypass", ...call }), {
            concurrency: "unbounded"
          }),
          (answers) => answers.flatMap((r) => r.embeddings)
        )
      }
      const generateServed = unary(CallSpecs.generate)
      return {
        chat,
        chatServed,
        chatBatch,
        chatStream: stream(CallSpecs.chat),
        /** `chatStream` opened: waits for its slot and first chunk as an Effect, then gives the rest (CallStream.open). */
        chatStreamOpen: open(CallSpecs.chat),
        generate: valueOf<GenerateRequest, GenerateResponse>(generateServed),
        generateServed,
        generateStream: stream(CallSpecs.generate),
        /** `generateStream` opened, as `chatStreamOpen`. */
        generateStreamOpen: open(CallSpecs.generate),
        embed,
        embedServed,
        embedMany,
        stats: stats.get,
        hedges: hedger.hedges,
        batching: batcher.stats
      } as const
    })
}) {}
