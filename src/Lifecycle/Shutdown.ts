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
 *
 * This file holds the drain's state and its finalizer; the gateway's part (refusing, counting, ending streams with
 * an error line in the client's framing) is HTTP and lives in `Http/DrainMiddleware.ts`.
 */
import { Clock, Context, Deferred, Duration, Effect, Layer, Ref, Schedule } from "effect"
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
  /**
   * What the drain waits for (at most 2 s) once nothing is counted in flight: the server's answers written out to
   * their sockets. The HTTP server sets it (Http/OpenResponses.ts); by default a short fixed grace.
   */
  readonly flushed: Ref.Ref<Effect.Effect<void>>
}

export class Drain extends Context.Tag("sluice/Drain")<Drain, Service>() {}

const make = (options: Options) =>
  Effect.gen(function* () {
    const draining = yield* Ref.make(false)
    const deadline = yield* Deferred.make<void>()
    const inFlight = yield* Ref.make(0)
    const flushed = yield* Ref.make<Effect.Effect<void>>(Effect.sleep(flushGrace))
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
      // a request leaves the count when its last byte is handed to Node, not when the socket wrote it: let those
      // writes finish before the server's own finalizer interrupts what is still open
      yield* Effect.interruptible(Effect.flatten(Ref.get(flushed))).pipe(Effect.timeoutOption(Duration.seconds(2)))
      const drained = (yield* Clock.currentTimeMillis) - started
      yield* Recorders.recordShutdown(drained, left)
      yield* Effect.logInfo(`shutdown: drained in ${drained} ms, ${left} requests ended at the deadline`)
    })
    return { draining, deadline, inFlight, drain, flushed } satisfies Service
  })

/** The drain state (the gateway's middleware, Http/DrainMiddleware.ts, reads it). */
export const layer = (options: Options = {}) => Layer.effect(Drain, make(options))

/**
 * Drains when its scope closes. Build it after the HTTP server (provide the server to it), so that its finalizer
 * runs first: drain, then close the server, then the engine and the database.
 */
export const onClose = Layer.scopedDiscard(Effect.flatMap(Drain, (drain) => Effect.addFinalizer(() => drain.drain)))

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
