/**
 * The inner part of every engine call: choose a backend, then rate limit -> circuit breaker -> slot ->
 * per-attempt timeout -> OllamaClient, all inside the retry policy and the call's deadline (an instant that bounds
 * the slot wait, each attempt and the retries, so a unary call runs one timer per attempt).
 *
 * Why this order (ARCHITECTURE.md §3, refined):
 * - Retry wraps the backend choice, so a retry after a failure goes to another backend when one is available
 *   (the failed one is tried last) and an open breaker simply routes the retry elsewhere.
 * - The rate limiter sits outside the breaker: waiting for a token is not the backend's health, and a
 *   RateLimited refusal must not count as a success or a failure.
 * - The slot is taken inside the breaker, so a half-open probe holds its slot only while it runs, and the
 *   per-attempt timeout starts when the slot is held (queueing time is not the backend's fault).
 * Streams follow the same order; they are retried only before their first chunk reached the caller.
 */
import { Clock, Effect, Exit, Stream } from "effect"
import { CircuitOpen, everyBackend, type LlmError, type OllamaError } from "../Domain/LlmError.js"
import * as Deadline from "../Ollama/Deadline.js"
import type { OllamaClient } from "../Ollama/OllamaClient.js"
import type { Backend, Backends } from "./Backends.js"
import type { Turn } from "./CircuitBreaker.js"
import * as Track from "../Observability/Track.js"
import type * as Admission from "./Admission.js"
import * as Hedge from "./Hedge.js"
import * as Retry from "./Retry.js"
import * as Slots from "./Scheduler/Slots.js"
import * as Timeouts from "./Timeouts.js"

export interface Settings {
  readonly retry: Retry.Options
  readonly timeouts: Timeouts.Options
  /** Hedges attempts that run far longer than usual (Hedge.ts); none without it. */
  readonly hedger?: Hedge.Hedger | undefined
}

/** What one call does on whichever backend it lands. */
export interface Call<A> {
  readonly method: string
  readonly model: string
  /** Its class in the backend's queue. */
  readonly priority: Slots.Priority
  /** When the queue is full: wait for room, or fail at once with QueueFull. */
  readonly wait: boolean
  /** Model tokens the answer used (charged to the backend's tokens-per-minute bucket). */
  readonly tokens: (answer: A) => number
  /** The slot the call reserved while waiting for admission (Admission.ts), claimed by its first attempt there. */
  readonly admitted?: Admission.Admitted | undefined
}

/** Counts retries for the engine's stats. */
export type OnRetry = (error: LlmError) => Effect.Effect<void>

const allOpen = (backends: Backends) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const stats = yield* Effect.forEach(backends.all, (b) => b.breaker.stats)
    const soonest = Math.min(...stats.map((s) => s.openUntilMs ?? now))
    return new CircuitOpen({ backend: everyBackend, retryAfterMs: Math.max(0, soonest - now) })
  })

/**
 * No backend admits the call: it waits (until `until`) for the first breaker that is not dead to admit calls
 * again (its open period passed, or its half-open probe ended); when every breaker is open and dead, or the wait
 * reaches `until`, the call fails with CircuitOpen on every backend (CircuitBreaker.ts, "dead or degraded").
 */
const awaitBreakers = (backends: Backends, until: number): Effect.Effect<void, CircuitOpen> =>
  Effect.flatMap(
    Effect.raceAll(
      backends.all.map((b): Effect.Effect<Turn> =>
        Effect.flatMap(b.breaker.awaitTurn(until), (turn) => (turn === "dead" ? Effect.never : Effect.succeed(turn)))
      )
    ).pipe(Effect.raceFirst(Effect.andThen(everyDead(backends), Effect.succeed<Turn>("dead")))),
    (turn) => (turn === "changed" ? Effect.void : Effect.flip(allOpen(backends)))
  )

/** Succeeds when every breaker is open and dead (at once, or never). */
const everyDead = (backends: Backends): Effect.Effect<void> =>
  Effect.flatMap(
    Effect.forEach(backends.all, (b) => Effect.map(b.breaker.stats, (s) => s.dead && s.state === "open")),
    (dead) => (dead.every(Boolean) ? Effect.void : Effect.never)
  )

/**
 * Picks the best backend not tried yet in this call (or the best one when all were tried); the backend the call
 * holds a reserved slot on goes first while it is still a candidate. When no backend admits calls, waits for a
 * breaker's turn (`awaitBreakers`).
 */
const pick = (
  backends: Backends,
  model: string,
  tried: Set<string>,
  until: number,
  reservedOn?: string
): Effect.Effect<Backend, CircuitOpen> =>
  Effect.suspend(() => {
    const choose = (candidates: ReadonlyArray<Backend>): Effect.Effect<Backend, CircuitOpen> => {
      const untried = candidates.filter((b) => !tried.has(b.url))
      const backend = untried.find((b) => b.url === reservedOn) ?? untried[0] ?? candidates[0]
      if (backend === undefined) {
        return Effect.zipRight(awaitBreakers(backends, until), pick(backends, model, tried, until, reservedOn))
      }
      tried.add(backend.url)
      return Effect.succeed(backend)
    }
    // the choice made in this step when every breaker is closed (Backends.candidatesNow)
    const now = backends.candidatesNow(model)
    return now !== undefined ? choose(now) : Effect.flatMap(backends.candidates(model), choose)
  })

/** Output tokens: the adaptive limit measures latency per token, so long answers do not look like overload. */
const workOf =
  <A>(call: Call<A>) =>
  (answer: A): number =>
    Math.max(1, call.tokens(answer))

/** Calls of one method and model share their latencies (Hedge.ts). */
const keyOf = (call: { readonly method: string; readonly model: string }): string => `${call.method} ${call.model}`

const engineWhere = (call: { readonly method: string }): Timeouts.Where => ({ backend: "engine", method: call.method })

const onBackend = <A>(
  backends: Backends,
  backend: Backend,
  call: Call<A>,
  run: (client: OllamaClient.Service) => Effect.Effect<A, OllamaError>,
  settings: Settings,
  until: number,
  mark: Hedge.Mark
): Effect.Effect<A, LlmError> => {
  const where = { attempt: { backend: backend.url, method: call.method }, deadline: engineWhere(call) }
  const attempt = Hedge.startThen(mark, () => run(backend.client)).pipe(
    Timeouts.attemptWithin(where, settings.timeouts, until, Deadline.enforces(backend.client)),
    // No span of its own: the client's `OllamaClient.<method>` span (backend, model) is the attempt's span.
    Track.upstream({ backend: backend.url, model: call.model, endpoint: call.method })
  )
  const slotted = backend.slots.withSlot(call.priority, attempt, {
    wait: call.wait,
    work: workOf(call),
    reserved: call.admitted?.reservation,
    deadlineAt: until,
    onExpired: () => Timeouts.deadlineError(where.deadline, settings.timeouts.deadline),
    lease: mark
  })
  const requeued = Retry.retryLazily(slotted, () => Retry.requeue(until))
  const limited = backend.bucket.limit(backend.breaker.protect(requeued))
  return backends.track(backend)(
    backend.bucket.charges ? Effect.tap(limited, (answer) => backend.bucket.charge(call.tokens(answer))) : limited
  )
}

/**
 * A unary call: retried across backends within the deadline. The deadline is an instant every wait of the call
 * is bounded by (the slot, each attempt, the retry policy), not a race around the call: see Timeouts.attemptWithin.
 */
export const unary = <A>(
  backends: Backends,
  call: Call<A>,
  run: (client: OllamaClient.Service) => Effect.Effect<A, OllamaError>,
  settings: Settings,
  onRetry: OnRetry
): Effect.Effect<A, LlmError> =>
  Effect.clockWith((clock) => {
    const now = clock.unsafeCurrentTimeMillis()
    const until = Timeouts.deadlineAt(now - (call.admitted?.waitedMs ?? 0), settings.timeouts.deadline)
    if (until <= now) return Effect.fail(Timeouts.deadlineError(engineWhere(call), settings.timeouts.deadline))
    // the backends this call tried, so a retry goes elsewhere first (clockWith's body runs each time the call runs)
    const tried = new Set<string>()
    // `rerouted`: the backend's breaker opened between the choice and the call; the choice skips it now
    const attempt = (mark: Hedge.Mark): Effect.Effect<A, LlmError> =>
      Effect.flatMap(pick(backends, call.model, tried, until, call.admitted?.backend), (backend) =>
        onBackend(backends, backend, call, run, settings, until, mark)
      ).pipe(
        Effect.catchIf(
          (error) => error.rerouted,
          () => attempt(mark)
        )
      )
    // the first attempt runs in place when every backend's exchange can be cut (HedgeInPlace.ts)
    const cuttable = backends.all.every((b) => Deadline.enforces(b.client))
    const hedged = settings.hedger?.run(keyOf(call), attempt, cuttable) ?? attempt({ at: undefined })
    // merged by Object.assign, not spread: see Observability/Track.ts `upstream`
    return Retry.retry(Object.assign({}, settings.retry, { onRetry, until }))(hedged)
  })

const streamOnBackend = <A>(
  backends: Backends,
  backend: Backend,
  call: Call<A>,
  open: (client: OllamaClient.Service) => Stream.Stream<A, OllamaError>,
  isLast: (chunk: A) => boolean,
  settings: Settings,
  mark: Hedge.Mark
): Stream.Stream<A, LlmError> => {
  const where = { backend: backend.url, method: call.method }
  const slotted = Stream.unwrapScoped(
    Effect.map(
      Effect.tap(
        backend.slots.acquire(call.priority, { wait: call.wait, reserved: call.admitted?.reservation }),
        (held) => {
          mark.release = held.release
          return Hedge.start(mark)
        }
      ),
      (held) =>
        open(backend.client).pipe(
          Timeouts.stream(where, { firstToken: settings.timeouts.firstToken, idle: settings.timeouts.idle }),
          Track.upstreamStream({ backend: backend.url, model: call.model, endpoint: call.method }, isLast),
          Stream.tap((chunk) => (isLast(chunk) ? held.done("ok", workOf(call)(chunk)) : Effect.void)),
          Stream.tapError((error) => held.done(Slots.classify(Exit.fail(error))))
        )
    )
  )
  const counted = Stream.unwrapScoped(
    Effect.as(
      Effect.acquireRelease(
        Effect.sync(() => {
          backend.state.inFlight++
        }),
        () =>
          Effect.sync(() => {
            backend.state.inFlight--
          })
      ),
      // 503 busy comes before the first chunk: re-queued like a unary call's (Retry.requeue)
      backend.breaker.protectStream(Stream.retry(slotted, Retry.requeue(Infinity)))
    )
  )
  return Stream.unwrap(Effect.as(backend.bucket.take, counted)).pipe(
    Stream.tap((chunk) => (isLast(chunk) ? backend.bucket.charge(call.tokens(chunk)) : Effect.void))
  )
}

/** A streamed call: retried across backends until its first chunk, within the deadline. */
export const stream = <A>(
  backends: Backends,
  call: Call<A>,
  open: (client: OllamaClient.Service) => Stream.Stream<A, OllamaError>,
  isLast: (chunk: A) => boolean,
  settings: Settings,
  onRetry: OnRetry
): Stream.Stream<A, LlmError> =>
  Stream.unwrap(
    Effect.sync(() => {
      const tried = new Set<string>()
      const attempt = (mark: Hedge.Mark): Stream.Stream<A, LlmError> =>
        Stream.unwrap(
          Effect.map(pick(backends, call.model, tried, Infinity, call.admitted?.backend), (backend) =>
            streamOnBackend(backends, backend, call, open, isLast, settings, mark)
          )
        ).pipe(Stream.catchAll((error) => (error.rerouted ? attempt(mark) : Stream.fail(error))))
      const hedged = settings.hedger?.stream(keyOf(call), attempt) ?? attempt({ at: undefined })
      return hedged.pipe(Retry.retryStream(Object.assign({}, settings.retry, { onRetry })))
    })
  ).pipe(Timeouts.deadlineStream(engineWhere(call), settings.timeouts.deadline, call.admitted?.waitedMs))
