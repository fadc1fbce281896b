/**
 * A unary engine call, stage by stage. From the caller inward:
 *
 *   metrics -> admission (a miss waits for a reserved slot) -> span, count, per-call budget -> fallback
 *   -> cache (a hit returns here) -> budget (reserve a call, charge its tokens) -> pipeline (or the batcher)
 *
 * Each stage is a function below, named after it; `make` and `served` put them together in that order.
 *
 * Choices:
 * - A call skips admission when waiting would serve nothing: the cache answers it now (a fresh entry, a flight to
 *   follow), a budget in scope already refuses it, or the embedding batcher takes it (Admission.ts).
 * - The span starts once the call is admitted: a span per queued call would cost more than the call's wait
 *   itself (Admission.ts); the wait is its `sluice.queue_wait_ms` attribute.
 * - An `alternate` fallback runs the stages from fallback inward again for the other model, without fallbacks of
 *   its own and without admission (it already waited once).
 */
import { Cause, Chunk, Effect, Exit, Option } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import * as Recorders from "../Observability/Recorders.js"
import * as Spans from "../Observability/Spans.js"
import * as Track from "../Observability/Track.js"
import * as Admission from "./Admission.js"
import type { Backends } from "./Backends.js"
import * as Budget from "./Budget.js"
import * as CallPolicy from "./CallPolicy.js"
import type { CallOptions } from "./CallPolicy.js"
import type * as CallSpecs from "./CallSpecs.js"
import type { CallStats } from "./CallStats.js"
import type * as EmbedBatcher from "./EmbedBatcher.js"
import * as Fallback from "./Fallback.js"
import * as Pipeline from "./Pipeline.js"
import type { Lookup, ResponseCache } from "./ResponseCache.js"
import * as Timeouts from "./Timeouts.js"

/** An answer with how it was produced. */
export interface Served<A> {
  readonly value: A
  readonly served: Fallback.Served
  readonly lookup: Lookup
}

/** What the pipeline stage runs on. */
export interface Upstream {
  readonly backends: Backends
  readonly policy: CallPolicy.CallPolicy
  readonly stats: CallStats
}

/** What every stage runs on. */
export interface Engine extends Upstream {
  readonly cache: ResponseCache
  readonly batcher: EmbedBatcher.EmbedBatcher
}

type Model = { readonly model: string }

/** pipeline: retried across backends within the deadline, from the slot admission reserved (Pipeline.ts). */
export const pipeline = <Req extends Model, A>(
  engine: Upstream,
  spec: CallSpecs.Spec<Req, A>,
  req: Req,
  call: CallOptions,
  admitted: Admission.Admitted = Admission.direct
): Effect.Effect<A, LlmError> =>
  Pipeline.unary(
    engine.backends,
    CallPolicy.pipelineCall(spec, req.model, call, admitted),
    (client) => spec.run(client, req),
    engine.policy.settings(call),
    engine.stats.onRetry(spec.method)
  )

/** Single-text embeddings go to the batcher (one `/api/embed` per window); the rest through the pipeline. */
const upstream = <Req extends Model, A>(
  engine: Engine,
  spec: CallSpecs.Spec<Req, A>,
  req: Req,
  call: CallOptions,
  admitted: Admission.Admitted | undefined
): Effect.Effect<A, LlmError> => {
  const batched = spec.batchable?.(req)
  return batched === undefined ? pipeline(engine, spec, req, call, admitted) : batched(engine.batcher)
}

/** budget: a call is reserved in every budget in scope before it goes upstream; its tokens are charged after. */
const budgeted =
  <A>(tokens: (answer: A) => number) =>
  (upstream: Effect.Effect<A, LlmError>): Effect.Effect<A, LlmError> =>
    Budget.whenActive(
      upstream,
      Budget.reserveCall.pipe(
        Effect.tapError(Recorders.recordBudgetExhausted),
        Effect.zipRight(upstream),
        Effect.tap((answer) => Budget.charge(tokens(answer)))
      )
    )

/** fallback: the strategies tried when the call fails for good, and what each one does (Fallback.ts). */
const fallback =
  <Req extends Model, A>(
    engine: Engine,
    spec: CallSpecs.Spec<Req, A>,
    req: Req,
    call: CallOptions,
    key: string,
    withFallbacks: boolean
  ) =>
  (primary: Effect.Effect<{ value: A; lookup: Lookup }, LlmError>): Effect.Effect<Served<A>, LlmError> => {
    const handlers = (): Fallback.Handlers<{ value: A; lookup: Lookup }, LlmError> => ({
      alternate: (model) => served(engine, spec, { ...req, model }, call, undefined, false),
      stale: Effect.map(
        engine.cache.stale<A>(key),
        Option.map((value) => ({ value, lookup: "hit" as Lookup }))
      ),
      reply: (content) => ({ value: spec.whole(spec.reply?.(req, content) ?? []), lookup: "bypass" })
    })
    // the strategies and their handlers are worked out only for a mendable failure (Fallback.run's own test)
    const recover = (error: LlmError) =>
      Fallback.run(
        Effect.fail(error),
        withFallbacks ? engine.policy.fallbacks(spec, req.model, call) : [],
        handlers()
      ).pipe(
        Effect.tap(({ served }) => engine.stats.onServed(served)),
        Effect.map(({ value, served }) => ({ value: value.value, lookup: value.lookup, served }))
      )
    // the answer labelled and a failure caught in one frame (`Effect.catchAll` of an `Effect.map`: every call)
    return Effect.matchCauseEffect(primary, {
      onSuccess: (answer) => Exit.succeed<Served<A>>({ value: answer.value, lookup: answer.lookup, served: "primary" }),
      onFailure: (cause) => {
        // as `catchAll` decides: a failure is handled unless a defect came with it
        const failure = Cause.failureOption(cause)
        return failure._tag === "Some" && failure.value.mendable && Chunk.isEmpty(Cause.defects(cause))
          ? recover(failure.value)
          : Exit.failCause(cause)
      }
    })
  }

/** fallback -> cache -> budget -> pipeline: the answer to `req`, with how it was produced. */
const served = <Req extends Model, A>(
  engine: Engine,
  spec: CallSpecs.Spec<Req, A>,
  req: Req,
  call: CallOptions,
  admission: { readonly key: string; readonly admitted: Admission.Admitted } | undefined,
  withFallbacks: boolean
): Effect.Effect<Served<A>, LlmError> => {
  const key = admission?.key ?? spec.key(req)
  const deadline = engine.policy.settings(call).timeouts.deadline
  // with a shared cache, a wait for the same call on another instance is bounded by this call's deadline
  const bound = {
    deadline,
    waitedMs: admission?.admitted.waitedMs ?? 0,
    expired: () => Timeouts.deadlineError({ backend: "engine", method: spec.method }, deadline)
  }
  return upstream(engine, spec, req, call, admission?.admitted).pipe(
    budgeted(spec.tokens),
    (compute) => engine.cache.get(key, call.cache ?? "use", compute, bound),
    fallback(engine, spec, req, call, key, withFallbacks)
  )
}

/** admission: a miss waits for a slot reserved on its backend, then `run`s; the others `run` at once. */
const admission = <Req extends Model, A, B>(
  engine: Engine,
  spec: CallSpecs.Spec<Req, A>,
  req: Req,
  call: CallOptions,
  key: string,
  run: (admitted: Admission.Admitted) => Effect.Effect<B, LlmError>
): Effect.Effect<B, LlmError> =>
  spec.batchable?.(req) !== undefined
    ? run(Admission.direct)
    : Effect.flatMap(Admission.skipsLine(engine.cache, key, call.cache, "unary"), (skip) =>
        skip ? run(Admission.direct) : Admission.admit(engine.backends, engine.policy.line(req.model, call), run)
      )

/**
 * The call starts once admitted: counted, in its own budget if it has one, in its `Llm.<method>` span (made only
 * while spans are exported: Observability/Spans.ts).
 */
const started =
  (engine: Engine, method: string, model: string, call: CallOptions, admitted: Admission.Admitted) =>
  <B>(answer: Effect.Effect<B, LlmError>): Effect.Effect<B, LlmError> =>
    // counted and the span decided in one step (every call passes here)
    Effect.withFiberRuntime((fiber) => {
      engine.stats.count()
      const budgeted =
        call.budget === undefined
          ? answer
          : Budget.scopedWith("call", call.budget, Recorders.recordBudgetExhausted)(answer)
      return Spans.exported(fiber)
        ? Effect.withSpan(budgeted, `Llm.${method}`, {
            attributes: { model, "sluice.queue_wait_ms": admitted.waitedMs },
            captureStackTrace: false
          })
        : budgeted
    })

/** A unary call of `spec`: every stage, outermost first. */
export const make =
  (engine: Engine) =>
  <Req extends Model, A>(spec: CallSpecs.Spec<Req, A>) =>
  (req: Req, call: CallOptions = {}): Effect.Effect<Served<A>, LlmError> => {
    const key = spec.key(req)
    return admission(engine, spec, req, call, key, (admitted) =>
      served(engine, spec, req, call, { key, admitted }, true).pipe(
        started(engine, spec.method, req.model, call, admitted)
      )
    ).pipe(
      Track.request<Served<A>>(
        { model: req.model, endpoint: spec.method, priority: CallPolicy.priority(call) },
        (s) => s.served
      )
    )
  }
