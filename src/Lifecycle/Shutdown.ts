/**
 * Graceful shutdown of the gateway (ARCHITECTURE.md §8), through Scopes: when `serve`'s scope closes (SIGTERM or
 * SIGINT interrupt the program), the drain finalizer runs before the HTTP server and the engine close:
 *
 * 1. `draining` turns on at once: readiness reports 503, and every new request is refused with `ShuttingDown`
 *    (503 with Retry-After), so a load balancer moves traffic away;
 * 2. requests in flight (queued or running, streamed or not) get up to `drainTimeout` to finish;
 * 3. at the deadline the rest end cleanly: a unary call answers 503 `ShuttingDown`, a stream gets a final
 *    `{"error": ...}` line; their upstream calls are interrupted (and so aborted);
 * 4. then the server, the engine (pools, background fibers) and the database close, in that order.
 *
 * A second signal kills the process at once: `NodeRuntime.runMain` handles only the first one.
 */
import { HttpApp, HttpBody, HttpServerResponse } from "@effect/platform"
import { Chunk, Clock, Context, Deferred, Duration, Effect, Layer, Option, Ref, Schedule, Stream } from "effect"
import { ShuttingDown } from "../Domain/LlmError.js"
import * as Recorders from "../Observability/Recorders.js"

export interface Options {
  /** How long requests in flight may take to finish once shutdown starts (default 30 s). */
  readonly drainTimeout?: Duration.DurationInput
}

export const defaults = { drainTimeout: Duration.seconds(30) }

const flushGrace = Duration.millis(250)

export interface Service {
  /** True from the moment shutdown starts. */
  readonly draining: Ref.Ref<boolean>
  /** Completed when the drain deadline passed (requests still running are ended). */
  readonly deadline: Deferred.Deferred<void>
  readonly inFlight: Ref.Ref<number>
  /** Starts the drain and waits until nothing is in flight or the deadline passed. */
  readonly drain: Effect.Effect<void>
}

export class Drain extends Context.Tag("sluice/Drain")<Drain, Service>() {}

const shuttingDown = () => {
  const error = new ShuttingDown()
  return HttpServerResponse.text(JSON.stringify({ error: error.message }), {
    status: 503,
    contentType: "application/json; charset=utf-8",
    headers: { "retry-after": "5" }
  })
}

const make = (options: Options) =>
  Effect.gen(function* () {
    const draining = yield* Ref.make(false)
    const deadline = yield* Deferred.make<void>()
    const inFlight = yield* Ref.make(0)
    const timeout = Duration.decode(options.drainTimeout ?? defaults.drainTimeout)
    const idle = Effect.repeat(Ref.get(inFlight), { until: (n) => n === 0, schedule: Schedule.spaced("20 millis") })
    const drain = Effect.gen(function* () {
      const started = yield* Clock.currentTimeMillis
      yield* Ref.set(draining, true)
      yield* Recorders.setReady(false)
      yield* Effect.logInfo(`shutdown: draining ${yield* Ref.get(inFlight)} requests in flight`)
      // finalizers run uninterruptibly: the wait itself must be interruptible for the timeout to cut it
      yield* Effect.interruptible(idle).pipe(Effect.timeoutOption(timeout))
      const left = yield* Ref.get(inFlight)
      yield* Deferred.succeed(deadline, undefined)
      // the requests still running now end at once (503 or a final error line): let them write it
      yield* Effect.interruptible(idle).pipe(Effect.timeoutOption(Duration.seconds(2)))
      // a request leaves the count when its last byte is handed to Node, not when the socket wrote it: a short
      // grace lets those writes finish before the server's own finalizer interrupts what is still open
      yield* Effect.sleep(flushGrace)
      const drained = (yield* Clock.currentTimeMillis) - started
      yield* Recorders.recordShutdown(drained, left)
      yield* Effect.logInfo(`shutdown: drained in ${drained} ms, ${left} requests ended at the deadline`)
    })
    return { draining, deadline, inFlight, drain } satisfies Service
  })

/** The drain state (the gateway's middleware reads it). */
export const layer = (options: Options = {}) => Layer.effect(Drain, make(options))

/**
 * Drains when its scope closes. Build it after the HTTP server (provide the server to it), so that its finalizer
 * runs first: drain, then close the server, then the engine and the database.
 */
export const onClose = Layer.scopedDiscard(Effect.flatMap(Drain, (drain) => Effect.addFinalizer(() => drain.drain)))

/**
 * The gateway middleware: refuses new requests while draining, counts requests in flight (a streamed one until
 * its body is written), ends a unary answer still running at the deadline with 503 ShuttingDown, and ends a
 * streamed body at the deadline with an error line.
 */
export const middleware =
  (drain: Service) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.flatMap(Ref.get(drain.draining), (draining) =>
      draining ? Effect.succeed(shuttingDown()) : Effect.suspend(() => counted(drain, app))
    )

/**
 * One request counted in flight. The server writes the answer inside the app (middleware only sees it after), so
 * a streamed body is wrapped by a pre-response handler. Unary handlers end themselves at the deadline
 * (`untilDeadline`), so they answer with their own error shape.
 */
const counted = <E, R>(drain: Service, app: HttpApp.Default<E, R>): HttpApp.Default<E, R> => {
  const done = Ref.update(drain.inFlight, (n) => n - 1)
  let streamed = false
  const follow = HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.map(Deferred.isDone(drain.deadline), (late) => {
      streamed = response.body._tag === "Stream"
      // a handler ended at the deadline leaves the server's empty 503: give it the error body clients expect
      return late && response.status === 503 && response.body._tag === "Empty"
        ? shuttingDown()
        : followBody(drain, response, done)
    })
  )
  return Effect.zipRight(
    Effect.zipRight(
      Ref.update(drain.inFlight, (n) => n + 1),
      follow
    ),
    Effect.onExit(app, (exit) =>
      streamed || (exit._tag === "Success" && exit.value.body._tag === "Stream") ? Effect.void : done
    )
  )
}

const encoder = new TextEncoder()

/** A streamed body counts until written, and ends at the drain deadline with `{"error": ...}` (no `done`). */
const followBody = (
  drain: Service,
  response: HttpServerResponse.HttpServerResponse,
  done: Effect.Effect<void>
): HttpServerResponse.HttpServerResponse => {
  const body = response.body
  if (body._tag !== "Stream") return response
  const stream = cutAtDeadline(drain, body.stream, finalLine(body.contentType)).pipe(Stream.ensuring(done))
  return HttpServerResponse.setBody(response, HttpBody.stream(stream, body.contentType, body.contentLength))
}

/**
 * Each pull races the deadline; once it passes, the error line goes out and the stream ends (the upstream is
 * interrupted when the stream's scope closes). A plain `Stream.interruptWhen` is not enough here: interrupting an
 * engine stream mid-pull surfaces as an interruption of the whole body, and the error line would never be sent.
 */
/** The last line of a stream cut at the deadline, in the stream's own framing (NDJSON, or SSE for /v1). */
const finalLine = (contentType: string | undefined): Uint8Array => {
  const message = new ShuttingDown().message
  return encoder.encode(
    contentType?.startsWith("text/event-stream")
      ? `data: ${JSON.stringify({ error: { message, type: "api_error", param: null, code: null } })}\n\n`
      : JSON.stringify({ error: message }) + "\n"
  )
}

const cutAtDeadline = <E>(drain: Service, stream: Stream.Stream<Uint8Array, E>, line: Uint8Array) =>
  Stream.unwrapScoped(
    Effect.map(Stream.toPull(stream), (pull) => {
      let ended = false
      const cut = Effect.map(Effect.interruptible(Deferred.await(drain.deadline)), () => {
        ended = true
        return Chunk.of(line)
      })
      const step = Effect.suspend(() => (ended ? Effect.fail(Option.none()) : Effect.raceFirst(pull, cut)))
      return Stream.repeatEffectChunkOption(step)
    })
  )

/**
 * Ends `effect` with ShuttingDown when the drain deadline passes (handlers use it, so the answer keeps the
 * client's error shape). Without a Drain in context (tests, library use) it is `effect` unchanged. The wait is
 * interruptible: the server runs handlers' surroundings uninterruptibly.
 */
export const untilDeadline = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | ShuttingDown, R> =>
  Effect.flatMap(Effect.serviceOption(Drain), (drain) =>
    drain._tag === "None"
      ? effect
      : Effect.raceFirst(
          effect,
          Effect.zipRight(Effect.interruptible(Deferred.await(drain.value.deadline)), Effect.fail(new ShuttingDown()))
        )
  )
