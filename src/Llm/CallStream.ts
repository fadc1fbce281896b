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
 * - `open` waits in the line as a plain Effect and builds the Stream only once admitted, then pulls up to the
 *   first chunk: a queued open costs like a queued unary call, where even Effect's own `Stream.runDrain` of a
 *   waiting stream costs ~20 KB (bench/memory). The stream it returns is the rest of the same run, so the stages,
 *   metrics and span are those of `make`'s stream.
 */
import { Channel, type Chunk, Clock, Effect, Either, Exit, Option, type Scope, Stream } from "effect"
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

/** A call's cache key, its stream once admitted (`run`), its wait in the line, and what its run records at its end. */
const prepare = <Req extends Model, A>(
  engine: Engine,
  spec: CallSpecs.StreamSpec<Req, A>,
  req: Req,
  call: CallOptions
) => {
  const key = spec.key(req)
  const labels = { model: req.model, endpoint: spec.method, priority: CallPolicy.priority(call) }
  return {
    key,
    run: (admitted: Admission.Admitted) =>
      served(engine, spec, req, call, { key, admitted }, true).pipe(started(engine, spec.method, req.model, admitted)),
    admit: (pending: Pending) =>
      Effect.flatMap(Admission.skipsLine(engine.cache, key, call.cache, "stream"), (skip) =>
        skip
          ? Effect.succeed(Admission.direct)
          : Admission.admitStream(engine.backends, engine.policy.line(req.model, call), (admitted) => {
              pending.admitted = admitted
            })
      ),
    end: (pending: Pending) => (exit: Exit.Exit<unknown, unknown>) =>
      Effect.zipRight(
        pending.admitted?.reservation?.release ?? Effect.void,
        Track.finishRequest(labels, pending.start, exit, undefined)
      )
  }
}

/** A streamed call of `spec`: every stage, outermost first. */
export const make =
  (engine: Engine) =>
  <Req extends Model, A>(spec: CallSpecs.StreamSpec<Req, A>) =>
  (req: Req, call: CallOptions = {}): Stream.Stream<A, LlmError> => {
    const { admit, end, run } = prepare(engine, spec, req, call)
    return Stream.fromChannel(
      Channel.suspend(() => {
        const pending: Pending = { start: 0, admitted: undefined }
        const begin = Effect.flatMap(Clock.currentTimeMillis, (start) => {
          pending.start = start
          return Effect.map(admit(pending), (admitted) => Stream.toChannel(run(admitted)))
        })
        return Channel.ensuringWith(Channel.unwrap(begin), end(pending))
      })
    )
  }

/** What an opened run records at its end: `end` runs once, at the stream's end or its Scope's close. */
interface Opened extends Pending {
  ended: boolean
}

/** The rest of a run after its first pull (`first`): nothing more once it ended. */
const rest = <A>(
  first: Either.Either<Chunk.Chunk<A>, Option.Option<LlmError>>,
  pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<LlmError>>
): Effect.Effect<Stream.Stream<A, LlmError>, LlmError> =>
  Either.isRight(first)
    ? Effect.succeed(Stream.concat(Stream.fromChunk(first.right), Stream.repeatEffectChunkOption(pull)))
    : Option.isSome(first.left)
      ? Effect.fail(first.left.value)
      : Effect.succeed(Stream.empty)

/**
 * A streamed call of `spec`, opened: waits in the line (cache lookup, budget, admission) as a plain Effect, then
 * runs the stream up to its first chunk (the request sent, retries and fallbacks before the first chunk) and
 * returns the chunks still to come. A failure before the first chunk fails the Effect. The run belongs to the
 * Scope: its slot is released when the stream ends or the Scope closes; an interrupt while queued leaves the line.
 */
export const open =
  (engine: Engine) =>
  <Req extends Model, A>(spec: CallSpecs.StreamSpec<Req, A>) =>
  (req: Req, call: CallOptions = {}): Effect.Effect<Stream.Stream<A, LlmError>, LlmError, Scope.Scope> => {
    const { end, key, run } = prepare(engine, spec, req, call)
    return Effect.flatMap(Clock.currentTimeMillis, (start) => {
      // no reservation here: Admission.admit gives back one the first attempt did not claim when `first` returns
      const opened: Opened = { start, admitted: undefined, ended: false }
      const endOnce = (exit: Exit.Exit<unknown, unknown>) => {
        if (opened.ended) return Effect.void
        opened.ended = true
        return end(opened)(exit)
      }
      // the Scope's finalizer covers an interrupt while queued and one before the run's own `ensuring` is set
      const first = (admitted: Admission.Admitted) =>
        Effect.flatMap(Stream.toPull(Stream.ensuringWith(run(admitted), endOnce)), (pull) =>
          Effect.flatMap(Effect.either(pull), (head) => rest(head, pull))
        )
      return Effect.zipRight(
        Effect.addFinalizer(endOnce),
        Effect.flatMap(Admission.skipsLine(engine.cache, key, call.cache, "stream"), (skip) =>
          skip ? first(Admission.direct) : Admission.admit(engine.backends, engine.policy.line(req.model, call), first)
        )
      )
    })
  }
