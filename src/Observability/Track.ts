/**
 * Combinators that time a call and record it with `Recorders.ts` when it ends, so wiring the engine and the
 * gateway is one `.pipe(...)` per place:
 *
 * - `request(labels, servedOf?)` around a whole engine call (Llm): outcome ok / fallback / error / interrupted,
 *   its duration, the fallback strategy and the error kind.
 * - `upstream(labels)` / `upstreamStream(labels, isLast)` around one attempt on a backend (Pipeline): outcome
 *   (ok or the error kind), duration, tokens in and out, time to first token, mean inter-token gap, decode speed.
 * - `http(routeOf)`: gateway middleware: requests by route, method and status, duration to the last body byte
 *   (streams included), requests in flight.
 *
 * Times come from `Clock`, so they follow the TestClock in tests. Token counts are read structurally from
 * Ollama's answer fields (`prompt_eval_count`, `eval_count`, `eval_duration`); no text is ever read.
 */
import {
  HttpApp,
  HttpBody,
  HttpMiddleware,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { Cause, Clock, Context, Effect, Exit, FiberRef, type MetricLabel, Option, type Scope, Stream } from "effect"
import * as Labels from "./Labels.js"
import * as Recorders from "./Recorders.js"

/** Tokens and decode time an Ollama answer reports (any of them may be missing). */
export interface Usage {
  readonly tokensIn?: number | undefined
  readonly tokensOut?: number | undefined
  readonly evalDurationNs?: number | undefined
}

const numberField = (value: unknown, field: string): number | undefined => {
  if (typeof value !== "object" || value === null || !(field in value)) return undefined
  const n = (value as Record<string, unknown>)[field]
  return typeof n === "number" ? n : undefined
}

/** Reads `prompt_eval_count`, `eval_count` and `eval_duration` from an answer or a final chunk. */
export const usageOf = (answer: unknown): Usage => ({
  tokensIn: numberField(answer, "prompt_eval_count"),
  tokensOut: numberField(answer, "eval_count"),
  evalDurationNs: numberField(answer, "eval_duration")
})

const outcomeOf = <E>(cause: Cause.Cause<E>) =>
  Cause.isInterruptedOnly(cause) ? ("interrupted" as const) : ("error" as const)

/** Labels of an engine call. */
export interface RequestLabels {
  readonly model: string
  readonly endpoint: string
  readonly priority?: string | undefined
}

/**
 * Records an engine call that ended with `exit` after `durationMs`, synchronously; returns the extra count still
 * to run, if any (a fallback or an error, both rare). Shared by `request` and `finishRequest`.
 */
const recordEnd = <A, E>(
  labels: RequestLabels,
  exit: Exit.Exit<A, E>,
  durationMs: number,
  servedOf: ((a: A) => string) | undefined,
  extra: ReadonlyArray<MetricLabel.MetricLabel>
): Effect.Effect<void> | undefined => {
  // each sample spelled out, not spread: see `upstream`
  const sample = (outcome: Recorders.Outcome): Recorders.RequestSample => ({
    model: labels.model,
    endpoint: labels.endpoint,
    priority: labels.priority,
    outcome,
    durationMs
  })
  if (Exit.isSuccess(exit)) {
    const served = servedOf?.(exit.value) ?? "primary"
    Recorders.requestEnded(sample(served === "primary" ? "ok" : "fallback"), extra)
    return served === "primary" ? undefined : Recorders.recordFallback(labels.endpoint, served)
  }
  Recorders.requestEnded(sample(outcomeOf(exit.cause)), extra)
  const failure = Cause.failureOption(exit.cause)
  return failure._tag === "Some" ? Recorders.recordError(labels.endpoint, failure.value) : undefined
}

/** Records an engine call that started at `start` (Clock ms) and ended with `exit` (the streamed calls). */
export const finishRequest = <A, E>(
  labels: RequestLabels,
  start: number,
  exit: Exit.Exit<A, E>,
  servedOf: ((a: A) => string) | undefined
): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    const now = Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()
    const extra = fiber.getFiberRef(FiberRef.currentMetricLabels)
    return recordEnd(labels, exit, now - start, servedOf, extra) ?? Effect.void
  })

/**
 * Runs `effect` and hands its exit, the milliseconds it took (Clock) and the fiber's metric labels to `ended` in the
 * step it ends: `Effect.onExit` with the clock and the labels read in place, for the recordings made on every engine
 * call and every attempt (as a clock read, an `onExit` and an Effect per recording they were ~12 runtime steps each,
 * ~5 now). `ended` records synchronously and returns what is left to run, if anything (a rare extra count).
 */
const timedExit = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  ended: (
    exit: Exit.Exit<A, E>,
    durationMs: number,
    extra: ReadonlyArray<MetricLabel.MetricLabel>
  ) => Effect.Effect<void> | undefined
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) => {
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const start = clock.unsafeCurrentTimeMillis()
    const end = (exit: Exit.Exit<A, E>): Effect.Effect<A, E> => {
      const rest = ended(exit, clock.unsafeCurrentTimeMillis() - start, fiber.getFiberRef(FiberRef.currentMetricLabels))
      return rest === undefined ? exit : Effect.zipRight(rest, exit)
    }
    return Effect.uninterruptibleMask((restore) =>
      Effect.matchCauseEffect(restore(effect), {
        onFailure: (cause) => end(Exit.failCause(cause)),
        onSuccess: (a) => end(Exit.succeed(a))
      })
    )
  })

/** Records a whole engine call when it ends; `servedOf` says how an answer was produced (`Served.served`). */
export const request =
  <A>(labels: RequestLabels, servedOf?: (answer: A) => string) =>
  <E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    timedExit(effect, (exit, durationMs, extra) => recordEnd(labels, exit, durationMs, servedOf, extra))

/** The same for a streamed engine call: ends when the stream ends. */
export const requestStream =
  (labels: RequestLabels) =>
  <A, E, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
    Stream.unwrap(
      Effect.map(Clock.currentTimeMillis, (start) =>
        Stream.ensuringWith(stream, (exit) => finishRequest(labels, start, exit, undefined))
      )
    )

/**
 * The same as a finalizer of the current Scope, for a stream built in `Stream.unwrapScoped`: the scope closes with
 * the stream's exit. One layer less per stream than `requestStream` (the engine's streams wait for admission
 * inside that scope, and every Stream layer around a waiting stream costs memory).
 */
export const requestScoped = (labels: RequestLabels): Effect.Effect<void, never, Scope.Scope> =>
  Effect.flatMap(Clock.currentTimeMillis, (start) =>
    Effect.addFinalizer((exit) => finishRequest(labels, start, exit, undefined))
  )

/** Labels of one attempt on a backend. */
export interface UpstreamLabels {
  readonly backend: string
  readonly model: string
  readonly endpoint: string
}

const failedOutcome = <E>(cause: Cause.Cause<E>): string => {
  const failure = Cause.failureOption(cause)
  return failure._tag === "Some" ? Labels.kind(failure.value) : outcomeOf(cause)
}

/**
 * Records one unary attempt on a backend when it ends, with the tokens its answer reports.
 *
 * The sample is spelled out field by field, not spread (`{ ...labels, durationMs }`): on Node 20 (V8 11) an object
 * literal that spreads another and then adds properties gets a hidden class outside V8's transition tree, so every
 * call made a fresh one per added property, in old space (~20 per gateway request across the hot path, ~2.4 KB of
 * old space per request; `bench/hidden-classes.ts` counts them).
 */
export const upstream =
  (labels: UpstreamLabels) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    timedExit(effect, (exit, durationMs, extra) => {
      const ok = Exit.isSuccess(exit)
      Recorders.upstreamEnded(
        {
          backend: labels.backend,
          model: labels.model,
          endpoint: labels.endpoint,
          outcome: ok ? "ok" : failedOutcome(exit.cause),
          durationMs,
          tokensIn: ok ? numberField(exit.value, "prompt_eval_count") : undefined,
          tokensOut: ok ? numberField(exit.value, "eval_count") : undefined,
          evalDurationNs: ok ? numberField(exit.value, "eval_duration") : undefined
        },
        extra
      )
      return undefined
    })

/** Records one streamed attempt when it ends: time to first chunk, chunks, and the usage of the last chunk. */
export const upstreamStream =
  <A>(labels: UpstreamLabels, isLast: (chunk: A) => boolean) =>
  <E, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
    Stream.unwrap(
      Effect.map(Clock.currentTimeMillis, (start) => {
        const seen = { chunks: 0, firstMs: undefined as number | undefined, usage: {} as Usage }
        const onChunk = (chunk: A) =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            seen.chunks += 1
            seen.firstMs ??= now - start
            if (isLast(chunk)) seen.usage = usageOf(chunk)
          })
        const finish = (exit: Exit.Exit<unknown, E>) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Recorders.recordUpstream({
              backend: labels.backend,
              model: labels.model,
              endpoint: labels.endpoint,
              outcome: Exit.isSuccess(exit) ? "ok" : failedOutcome(exit.cause),
              durationMs: now - start,
              firstTokenMs: seen.firstMs,
              chunks: seen.chunks,
              tokensIn: seen.usage.tokensIn,
              tokensOut: seen.usage.tokensOut,
              evalDurationNs: seen.usage.evalDurationNs
            })
          )
        return stream.pipe(Stream.tap(onChunk), Stream.ensuringWith(finish))
      })
    )

// ---- gateway ------------------------------------------------------------------------------------------------

/** The gateway's routes; any other path is recorded as "other", so scanners cannot grow the series. */
export const gatewayRoutes: ReadonlyArray<string> = [
  "/",
  "/api/version",
  "/api/tags",
  "/api/ps",
  "/api/show",
  "/api/chat",
  "/api/generate",
  "/api/embed",
  "/api/embeddings",
  "/health",
  "/health/live",
  "/health/ready",
  "/metrics"
]

/** Maps a request URL to one of `known` routes, or "other". */
export const routeOf =
  (known: ReadonlyArray<string> = gatewayRoutes) =>
  (url: string): string => {
    const path = url.split("?")[0] ?? url
    return known.includes(path) ? path : "other"
  }

/**
 * Gateway middleware recording every request; streamed bodies are timed until their last byte. It runs for every
 * request, so it reads the request and the clock and sets its pre-response handler directly on the fiber, in a few
 * Effect steps rather than a chain of them (bench/gateway).
 */
export const http = (route: (url: string) => string = routeOf()) =>
  HttpMiddleware.make((app) =>
    Effect.withFiberRuntime((fiber) => {
      const req = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
      const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
      const start = clock.unsafeCurrentTimeMillis()
      const done = (status: number) =>
        Effect.suspend(() =>
          Recorders.recordHttp({
            route: route(req.url),
            method: req.method,
            status,
            durationMs: clock.unsafeCurrentTimeMillis() - start
          })
        )
      // the server writes the answer inside `app`: a streamed body is timed through a pre-response handler
      let streamed = false
      const follow: HttpApp.PreResponseHandler = (_request, response) =>
        Effect.sync(() => {
          const body = response.body
          if (body._tag !== "Stream") return response
          streamed = true
          const stream = Stream.ensuring(body.stream, done(response.status))
          return HttpServerResponse.setBody(response, HttpBody.stream(stream, body.contentType, body.contentLength))
        })
      const handlers = fiber.getFiberRef(HttpApp.currentPreResponseHandlers)
      const followed = FiberRef.set(
        HttpApp.currentPreResponseHandlers,
        Option.some(
          Option.isNone(handlers)
            ? follow
            : (request, response) => Effect.flatMap(handlers.value(request, response), (r) => follow(request, r))
        )
      )
      return Effect.zipRight(
        Effect.zipRight(Recorders.recordHttpStart, followed),
        Effect.onExit(app, (exit) =>
          Exit.isFailure(exit)
            ? Effect.flatMap(HttpServerError.causeResponse(exit.cause), ([response]) => done(response.status))
            : streamed || exit.value.body._tag === "Stream"
              ? Effect.void
              : done(exit.value.status)
        )
      )
    })
  )
