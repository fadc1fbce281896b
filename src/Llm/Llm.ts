/**
 * The engine: every entry point (library, gateway, agents, batch jobs) calls `Llm`. One call goes
 *
 *   ResponseCache (a hit returns here and costs nothing) -> Budget (reserve a call) -> Pipeline (retry across
 *   backends within the deadline: rate limit -> breaker -> slot -> attempt timeout -> OllamaClient)
 *   <- Fallback (alternate model, stale cache entry, default reply, or the typed error)
 *
 * Streams take the same path: a miss streams through while the cache records it; a retry or a fallback only
 * happens before the first chunk reached the caller. See docs/fault-tolerance.md for settings and the
 * failure matrix.
 */
import { Duration, Effect, Option, Ref, Stream } from "effect"
import type { ChatRequest, ChatResponse } from "../Domain/Chat.js"
import type { EmbedRequest, EmbedResponse } from "../Domain/Embed.js"
import type { GenerateRequest, GenerateResponse } from "../Domain/Generate.js"
import type { LlmError } from "../Domain/LlmError.js"
import { normalizeName } from "../Domain/ModelName.js"
import { Backends } from "./Backends.js"
import * as Admission from "./Admission.js"
import * as Budget from "./Budget.js"
import { keyOf } from "./CacheKey.js"
import * as EmbedBatcher from "./EmbedBatcher.js"
import * as Recorders from "../Observability/Recorders.js"
import * as Track from "../Observability/Track.js"
import * as Fallback from "./Fallback.js"
import * as Hedge from "./Hedge.js"
import type * as Slots from "./Scheduler/Slots.js"
import * as Pipeline from "./Pipeline.js"
import * as CallSpecs from "./CallSpecs.js"
import { type CachePolicy, type Lookup, ResponseCache } from "./ResponseCache.js"
import * as Retry from "./Retry.js"
import * as Timeouts from "./Timeouts.js"

/** Scheduling classes, most urgent first. */
export type Priority = Slots.Priority

/** Per-call choices. */
export interface CallOptions {
  /** The call's class in the scheduler's queue (default "normal"). */
  readonly priority?: Priority
  /** When the queue is full: wait for room (default, backpressure) or fail at once with QueueFull. */
  readonly wait?: boolean
  /** "use" (default), "refresh" (recompute and store) or "bypass" (neither read nor write). */
  readonly cache?: CachePolicy
  /** The whole call's deadline (retries included); overrides the configured one. */
  readonly timeout?: Duration.DurationInput
  /** Fallback strategies for this call; override the model's configured ones. */
  readonly fallbacks?: ReadonlyArray<Fallback.Strategy>
  /** A budget for this call alone (unary calls), nested in any budget already in scope. */
  readonly budget?: Budget.Limits
}

export interface Options {
  /** The embedding batcher: window (5 ms) and maximum batch (64). */
  readonly batching?: EmbedBatcher.Options
  readonly retry?: Retry.Options
  readonly timeouts?: Timeouts.Options
  /** Hedged attempts against stalls (Hedge.ts); `{ budget: 0 }` turns them off. */
  readonly hedge?: Hedge.Options
  /** Fallback strategies by model name. */
  readonly fallbacks?: Readonly<Record<string, ReadonlyArray<Fallback.Strategy>>>
  /** Fallbacks for models without their own entry; default: serve a stale cache entry. */
  readonly defaultFallbacks?: ReadonlyArray<Fallback.Strategy>
}

/** An answer with how it was produced. */
export interface Served<A> {
  readonly value: A
  readonly served: Fallback.Served
  readonly lookup: Lookup
}

export interface Stats {
  readonly calls: number
  readonly retries: number
  readonly fallbacks: Readonly<Record<string, number>>
}

type Unary<Req, A> = (req: Req, options?: CallOptions) => Effect.Effect<A, LlmError>

export class Llm extends Effect.Service<Llm>()("sluice/Llm", {
  scoped: (options: Options = {}) =>
    Effect.gen(function* () {
      const backends = yield* Backends
      const cache = yield* ResponseCache
      const stats = yield* Ref.make<Stats>({ calls: 0, retries: 0, fallbacks: {} })
      const hedger = yield* Hedge.make(options.hedge)
      const fallbacksByModel = new Map(
        Object.entries(options.fallbacks ?? {}).map(([model, list]) => [normalizeName(model), list])
      )
      const defaultFallbacks = options.defaultFallbacks ?? [Fallback.stale]

      const onRetry = (method: string) => (error: LlmError) =>
        Effect.zipRight(
          Ref.update(stats, (s) => ({ ...s, retries: s.retries + 1 })),
          Recorders.recordRetry(method, error)
        )
      const onServed = (served: Fallback.Served) =>
        served === "primary"
          ? Effect.void
          : Ref.update(stats, (s) => ({
              ...s,
              fallbacks: { ...s.fallbacks, [served]: (s.fallbacks[served] ?? 0) + 1 }
            }))
      const settings = (call: CallOptions): Pipeline.Settings => ({
        retry: options.retry ?? {},
        hedger,
        timeouts: {
          ...Timeouts.defaults,
          ...options.timeouts,
          ...(call.timeout === undefined ? {} : { deadline: call.timeout })
        }
      })
      const strategies = (model: string, call: CallOptions) =>
        call.fallbacks ?? fallbacksByModel.get(normalizeName(model)) ?? defaultFallbacks

      const direct = <Req extends { readonly model: string }, A>(
        spec: CallSpecs.Spec<Req, A>,
        req: Req,
        call: CallOptions,
        admitted: Admission.Admitted = Admission.direct
      ) =>
        Pipeline.unary(
          backends,
          {
            method: spec.method,
            model: req.model,
            tokens: spec.tokens,
            priority: call.priority ?? "normal",
            wait: call.wait ?? true,
            admitted
          },
          (c) => spec.run(c, req),
          settings(call),
          onRetry(spec.method)
        )
      const batcher = yield* EmbedBatcher.make((req) => direct(CallSpecs.embed, req, {}), options.batching)
      const singleEmbed = <Req, A>(spec: CallSpecs.Spec<Req, A>, req: Req) =>
        spec.kind === "embed" ? EmbedBatcher.single(req as unknown as EmbedRequest) : undefined
      /** Single-text embeddings go through the batcher (one `/api/embed` per window); the rest straight out. */
      const upstream = <Req extends { readonly model: string }, A>(
        spec: CallSpecs.Spec<Req, A>,
        req: Req,
        call: CallOptions,
        admitted: Admission.Admitted | undefined
      ): Effect.Effect<A, LlmError> => {
        const one = singleEmbed(spec, req)
        // the cast is sound: for kind "embed", A is EmbedResponse
        return one === undefined
          ? direct(spec, req, call, admitted)
          : (batcher.embed(one) as unknown as Effect.Effect<A, LlmError>)
      }

      const served = <Req extends { readonly model: string }, A>(
        spec: CallSpecs.Spec<Req, A>,
        req: Req,
        call: CallOptions,
        withFallbacks: boolean,
        admission?: { readonly key: string; readonly admitted: Admission.Admitted }
      ): Effect.Effect<Served<A>, LlmError> => {
        const key = admission?.key ?? keyOf(spec.kind, req as never)
        const compute = Budget.reserveCall.pipe(
          Effect.tapError(Recorders.recordBudgetExhausted),
          Effect.zipRight(upstream(spec, req, call, admission?.admitted)),
          Effect.tap((answer) => Budget.charge(spec.tokens(answer)))
        )
        const primary = cache.get(key, call.cache ?? "use", compute)
        const handlers: Fallback.Handlers<{ value: A; lookup: Lookup }, LlmError> = {
          alternate: (model) => served(spec, { ...req, model }, call, false),
          stale: Effect.map(
            cache.stale<A>(key),
            Option.map((value) => ({ value, lookup: "hit" as Lookup }))
          ),
          reply: (content) => ({ value: spec.whole(spec.reply?.(req, content) ?? []), lookup: "bypass" })
        }
        const list = withFallbacks ? strategies(req.model, call).filter((s) => s._tag !== "default" || spec.reply) : []
        return Fallback.run(primary, list, handlers).pipe(
          Effect.tap(({ served }) => onServed(served)),
          Effect.map(({ value, served }) => ({ value: value.value, lookup: value.lookup, served }))
        )
      }

      /** Whether a call skips admission: its answer is at hand (cache, a flight to follow) or a budget refuses it. */
      const skipsLine = (key: string, call: CallOptions, kind: "unary" | "stream") =>
        (call.cache ?? "use") === "use"
          ? Effect.flatMap(cache.answersNow(key, kind), (answered) =>
              answered ? Effect.succeed(true) : Budget.refusesCall
            )
          : Budget.refusesCall
      const lineOf = (req: { readonly model: string }, call: CallOptions): Admission.Request => ({
        model: req.model,
        priority: call.priority ?? "normal",
        wait: call.wait ?? true,
        deadline: settings(call).timeouts.deadline
      })

      const unary =
        <Req extends { readonly model: string }, A>(spec: CallSpecs.Spec<Req, A>) =>
        (req: Req, call: CallOptions = {}): Effect.Effect<Served<A>, LlmError> => {
          const key = keyOf(spec.kind, req as never)
          const run = (admitted: Admission.Admitted) => {
            const counted = Effect.zipRight(
              Ref.update(stats, (s) => ({ ...s, calls: s.calls + 1 })),
              served(spec, req, call, true, { key, admitted })
            )
            const budgeted =
              call.budget === undefined
                ? counted
                : Budget.scopedWith("call", call.budget, Recorders.recordBudgetExhausted)(counted)
            // The span starts once the call is admitted (a span per queued call would cost more than the call's
            // wait itself, Admission.ts); the wait is an attribute.
            return Effect.withSpan(budgeted, `Llm.${spec.method}`, {
              attributes: { model: req.model, "sluice.queue_wait_ms": admitted.waitedMs },
              captureStackTrace: false
            })
          }
          const admitted =
            singleEmbed(spec, req) !== undefined
              ? run(Admission.direct)
              : Effect.flatMap(skipsLine(key, call, "unary"), (skip) =>
                  skip ? run(Admission.direct) : Admission.admit(backends, lineOf(req, call), run)
                )
          return admitted.pipe(
            Track.request<Served<A>>(
              { model: req.model, endpoint: spec.method, priority: call.priority ?? "normal" },
              (s) => s.served
            )
          )
        }

      const streamed = <Req extends { readonly model: string }, A>(
        spec: CallSpecs.StreamSpec<Req, A>,
        req: Req,
        call: CallOptions,
        withFallbacks: boolean,
        admission?: { readonly key: string; readonly admitted: Admission.Admitted }
      ): Stream.Stream<A, LlmError> => {
        const key = admission?.key ?? keyOf(spec.kind, req as never)
        const compute = Stream.unwrap(
          Effect.as(
            Effect.tapError(Budget.reserveCall, Recorders.recordBudgetExhausted),
            Pipeline.stream(
              backends,
              {
                method: spec.method,
                model: req.model,
                tokens: spec.tokens,
                priority: call.priority ?? "normal",
                wait: call.wait ?? true,
                admitted: admission?.admitted
              },
              (c) => spec.open(c, req),
              spec.isLast,
              settings(call),
              onRetry(spec.method)
            )
          )
        ).pipe(Stream.tap((chunk) => (spec.isLast(chunk) ? Budget.charge(spec.tokens(chunk)) : Effect.void)))
        const primary = cache.stream(key, call.cache ?? "use", compute, spec.isLast)
        const list = withFallbacks ? strategies(req.model, call).filter((s) => s._tag !== "default" || spec.reply) : []
        return Fallback.runStream(
          primary,
          list,
          {
            alternate: (model) => streamed(spec, { ...req, model }, call, false),
            stale: cache.staleStream<A>(key),
            reply: (content) => spec.reply?.(req, content) ?? []
          },
          (served) => Effect.zipRight(onServed(served), Recorders.recordFallback(spec.method, served))
        )
      }

      const stream =
        <Req extends { readonly model: string }, A>(spec: CallSpecs.StreamSpec<Req, A>) =>
        (req: Req, call: CallOptions = {}): Stream.Stream<A, LlmError> => {
          const key = keyOf(spec.kind, req as never)
          // As for unary calls: the span starts once the call is admitted; the wait is an attribute.
          const run = (admitted: Admission.Admitted) =>
            Stream.unwrap(
              Effect.as(
                Ref.update(stats, (s) => ({ ...s, calls: s.calls + 1 })),
                streamed(spec, req, call, true, { key, admitted })
              )
            ).pipe(
              Stream.withSpan(`Llm.${spec.method}Stream`, {
                attributes: { model: req.model, "sluice.queue_wait_ms": admitted.waitedMs },
                captureStackTrace: false
              })
            )
          // One scoped layer holds the metrics, the skip check and the wait (each Stream layer costs a waiting call).
          return Stream.unwrapScoped(
            Effect.zipRight(
              Track.requestScoped({ model: req.model, endpoint: spec.method, priority: call.priority ?? "normal" }),
              Effect.flatMap(skipsLine(key, call, "stream"), (skip) =>
                skip ? Effect.succeed(run(Admission.direct)) : Admission.admitStream(backends, lineOf(req, call), run)
              )
            )
          )
        }

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
      /** One vector per text, in order. */
      /**
       * One vector per text, in order. The texts go out in array calls of the batcher's maximum batch (one engine
       * call each: cached, retried, budgeted as one), which costs far less than a call per text (bench/embeddings).
       */
      const embedMany = (model: string, texts: Iterable<string>, call: CallOptions = {}) => {
        const all = Array.from(texts)
        const size = Math.max(1, options.batching?.maxBatch ?? 64)
        const chunks = Array.from({ length: Math.ceil(all.length / size) }, (_, i) =>
          all.slice(i * size, (i + 1) * size)
        )
        return Effect.map(
          Effect.forEach(chunks, (input) => embed({ model, input }, { priority: "batch", ...call }), {
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
        generate: valueOf<GenerateRequest, GenerateResponse>(generateServed),
        generateServed,
        generateStream: stream(CallSpecs.generate),
        embed,
        embedServed,
        embedMany,
        stats: Ref.get(stats),
        hedges: hedger.hedges,
        batching: batcher.stats
      } as const
    })
}) {}
