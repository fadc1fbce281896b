/**
 * A streamed engine call, stage by stage, in the same order as a unary one (CallUnary.ts):
 *
 *   metrics -> admission -> span, count -> fallback -> cache (a hit replays here) -> budget -> pipeline
 *
 * A miss streams through while the cache records it; a retry or a fallback only happens before the first chunk
 * reached the caller.
 *
 * Choices:
 * - One scoped layer (`Stream.unwrapScoped`) holds the metrics, the skip check and the admission wait: every
 *   Stream layer around a waiting stream costs memory (bench/memory).
 * - The budget reserves a call when the stream starts and charges its tokens from its last chunk; a per-call
 *   budget (`CallOptions.budget`) applies to unary calls only.
 */
import { Channel, Clock, Effect, type Exit, Stream } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import * as Recorders from "../Observability/Recorders.js"
import * as Track from "../Observability/Track.js"
import * as Admission from "./Admission.js"
import * as Budget from "./Budget.js"
import * as CallPolicy from "./CallPolicy.js"
import type { CallOptions } from "./CallPolicy.js"
import type * as CallSpecs from "./CallSpecs.js"
import type { Upstream } from "./CallUnary.js"
import * as Fallback from "./Fallback.js"
import * as Pipeline from "./Pipeline.js"
import type { ResponseCache } from "./ResponseCache.js"

/** What every stage of a stream runs on. */
export interface Engine extends Upstream {
  readonly cache: ResponseCache
}

type Model = { readonly model: string }

/** pipeline: retried across backends until its first chunk, within the deadline (Pipeline.ts). */
const pipeline = <Req extends Model, A>(
  engine: Engine,
  spec: CallSpecs.StreamSpec<Req, A>,
  req: Req,
  call: CallOptions,
  admitted: Admission.Admitted | undefined
): Stream.Stream<A, LlmError> =>
  Pipeline.stream(
    engine.backends,
    CallPolicy.pipelineCall(spec, req.model, call, admitted),
    (client) => spec.open(client, req),
    spec.isLast,
    engine.policy.settings(call),
    engine.stats.onRetry(spec.method)
  )

/** budget: a call is reserved in every budget in scope when the stream starts; the last chunk's tokens are charged. */
const budgeted =
  <A>(isLast: (chunk: A) => boolean, tokens: (chunk: A) => number) =>
  (upstream: Stream.Stream<A, LlmError>): Stream.Stream<A, LlmError> =>
    Stream.unwrap(Effect.as(Effect.tapError(Budget.reserveCall, Recorders.recordBudgetExhausted), upstream)).pipe(
      Stream.tap((chunk) => (isLast(chunk) ? Budget.charge(tokens(chunk)) : Effect.void))
    )

/** fallback: the strategies tried when the stream fails before its first chunk (Fallback.ts). */
const fallback =
  <Req extends Model, A>(
    engine: Engine,
    spec: CallSpecs.StreamSpec<Req, A>,
    req: Req,
    call: CallOptions,
    key: string,
    withFallbacks: boolean
  ) =>
  (primary: Stream.Stream<A, LlmError>): Stream.Stream<A, LlmError> =>
    Fallback.runStream(
      primary,
      withFallbacks ? engine.policy.fallbacks(spec, req.model, call) : [],
      {
        alternate: (model) => served(engine, spec, { ...req, model }, call, undefined, false),
        stale: engine.cache.staleStream<A>(key),
        reply: (content) => spec.reply?.(req, content) ?? []
      },
      (served) => Effect.zipRight(engine.stats.onServed(served), Recorders.recordFallback(spec.method, served))
    )

/** fallback -> cache -> budget -> pipeline: the stream of `req`. */
const served = <Req extends Model, A>(
  engine: Engine,
  spec: CallSpecs.StreamSpec<Req, A>,
  req: Req,
  call: CallOptions,
  admission: { readonly key: string; readonly admitted: Admission.Admitted } | undefined,
  withFallbacks: boolean
): Stream.Stream<A, LlmError> => {
  const key = admission?.key ?? spec.key(req)
  return pipeline(engine, spec, req, call, admission?.admitted).pipe(
    budgeted(spec.isLast, spec.tokens),
    (compute) => engine.cache.stream(key, call.cache ?? "use", compute, spec.isLast),
    fallback(engine, spec, req, call, key, withFallbacks)
  )
}

/** The stream starts once admitted: counted, in its `Llm.<method>Stream` span. */
const started =
  (engine: Engine, method: string, model: string, admitted: Admission.Admitted) =>
  <A>(stream: Stream.Stream<A, LlmError>): Stream.Stream<A, LlmError> =>
    Stream.unwrap(Effect.as(engine.stats.countCall, stream)).pipe(
      Stream.withSpan(`Llm.${method}Stream`, {
        attributes: { model, "sluice.queue_wait_ms": admitted.waitedMs },
        captureStackTrace: false
      })
    )

/** What a run of the stream gives back and records at its end: set when it starts and once it is admitted. */
interface Pending {
  start: number
  admitted: Admission.Admitted | undefined
}

/** A streamed call of `spec`: every stage, outermost first. */
export const make =
  (engine: Engine) =>
  <Req extends Model, A>(spec: CallSpecs.StreamSpec<Req, A>) =>
  (req: Req, call: CallOptions = {}): Stream.Stream<A, LlmError> => {
    const key = spec.key(req)
    const labels = { model: req.model, endpoint: spec.method, priority: CallPolicy.priority(call) }
    const run = (admitted: Admission.Admitted) =>
      Stream.toChannel(
        served(engine, spec, req, call, { key, admitted }, true).pipe(started(engine, spec.method, req.model, admitted))
      )
    const admit = (pending: Pending) =>
      Effect.flatMap(Admission.skipsLine(engine.cache, key, call.cache, "stream"), (skip) =>
        skip
          ? Effect.succeed(Admission.direct)
          : Admission.admitStream(engine.backends, engine.policy.line(req.model, call), (admitted) => {
              pending.admitted = admitted
            })
      )
    return Stream.fromChannel(
      Channel.suspend(() => {
        const pending: Pending = { start: 0, admitted: undefined }
        const begin = Effect.flatMap(Clock.currentTimeMillis, (start) => {
          pending.start = start
          return Effect.map(admit(pending), run)
        })
        const end = (exit: Exit.Exit<unknown, unknown>) =>
          Effect.zipRight(
            pending.admitted?.reservation?.release ?? Effect.void,
            Track.finishRequest(labels, pending.start, exit, undefined)
          )
        return Channel.ensuringWith(Channel.unwrap(begin), end)
      })
    )
  }
