/**
 * Measures how long one gateway request waits on the engine, so `x-sluice-overhead-ms` can report the rest: the
 * time Sluice itself spent (reading and validating the body, translating, serialising, middleware).
 *
 * The gateway's `Llm` and `Catalog` are swapped for timed copies once (`layer`, in Server.ts); each request sets
 * its own `Timer` in a FiberRef (`currentTimer`, from `Front.middleware`), and every engine call a route makes adds
 * its duration to it; for a stream every pull is timed. The routes need no change. What happens inside the engine (cache lookups, queueing, retries, the backend itself) counts as upstream
 * here; the engine's own share is in its metrics (`sluice_llm_request_duration_seconds` against
 * `sluice_llm_upstream_duration_seconds`).
 */
import { Clock, Context, Effect, FiberRef, Layer, Stream } from "effect"
import { Catalog } from "../Llm/Catalog.js"
import { Llm } from "../Llm/Llm.js"

/** The time one request has spent waiting on the engine so far. */
export interface Timer {
  upstreamNanos: bigint
}

export const makeTimer = (): Timer => ({ upstreamNanos: 0n })

/**
 * The timer of the gateway request the current fiber serves (none outside a request). Set for the rest of the
 * request by the front middleware (Front.ts), with its other fiber refs in one step: the request has a fiber of its
 * own, and a streamed body is pulled after the handler returns, still on that fiber.
 */
export const currentTimer: FiberRef.FiberRef<Timer | undefined> = FiberRef.unsafeMake<Timer | undefined>(undefined)

/** Adds the duration of `effect` to the timer. */
export const timed =
  (timer: Timer) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(Clock.currentTimeNanos, (start) =>
      Effect.ensuring(
        effect,
        Effect.map(Clock.currentTimeNanos, (end) => {
          timer.upstreamNanos += end - start
        })
      )
    )

/** Adds the time spent waiting for each chunk of `stream` to the timer. */
export const timedStream =
  (timer: Timer) =>
  <A, E, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
    Stream.unwrapScoped(Effect.map(Stream.toPull(stream), (pull) => Stream.repeatEffectChunkOption(timed(timer)(pull))))

/**
 * `effect` timed into the current request's timer, if there is one: `timed`, with the timer and the clock read from
 * the fiber in one step (every unary engine call of the gateway passes here).
 */
const time = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) => {
    const timer = fiber.getFiberRef(currentTimer)
    if (timer === undefined) return effect
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const start = clock.unsafeCurrentTimeNanos()
    return Effect.ensuring(
      effect,
      Effect.sync(() => {
        timer.upstreamNanos += clock.unsafeCurrentTimeNanos() - start
      })
    )
  })

/** `stream` with each pull timed into the timer of the request that pulls it first, if there is one. */
const timeStream = <A, E, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
  Stream.unwrapScoped(
    Effect.flatMap(FiberRef.get(currentTimer), (timer) =>
      timer === undefined
        ? Effect.succeed(stream)
        : Effect.map(Stream.toPull(stream), (pull) => Stream.repeatEffectChunkOption(timed(timer)(pull)))
    )
  )

/** An opened stream (`Llm.chatStreamOpen`): the open timed, then each pull of the rest. */
const timeOpen = <A, E, R>(open: Effect.Effect<Stream.Stream<A, E>, E, R>): Effect.Effect<Stream.Stream<A, E>, E, R> =>
  Effect.flatMap(FiberRef.get(currentTimer), (timer) =>
    timer === undefined ? open : Effect.map(timed(timer)(open), timedStream(timer))
  )

/** The engine with every call the gateway makes timed into the current request's timer. */
export const timedLlm = (llm: Llm): Llm =>
  Llm.make({
    ...llm,
    chatServed: (req, call) => time(llm.chatServed(req, call)),
    chatStream: (req, call) => timeStream(llm.chatStream(req, call)),
    chatStreamOpen: (req, call) => timeOpen(llm.chatStreamOpen(req, call)),
    generateServed: (req, call) => time(llm.generateServed(req, call)),
    generateStream: (req, call) => timeStream(llm.generateStream(req, call)),
    generateStreamOpen: (req, call) => timeOpen(llm.generateStreamOpen(req, call)),
    embedServed: (req, call) => time(llm.embedServed(req, call))
  })

/** The catalog with every read timed into the current request's timer. */
export const timedCatalog = (catalog: Catalog): Catalog =>
  Catalog.make({
    ...catalog,
    list: time(catalog.list),
    ps: time(catalog.ps),
    version: time(catalog.version),
    show: (req) => time(catalog.show(req)),
    embeddings: (req) => time(catalog.embeddings(req))
  })

/**
 * Swaps the engine and the catalog (when present) for their timed copies, once, for the routes served under it;
 * a request then only sets its timer (`measure`), instead of building and providing two copies per request.
 */
export const layer: Layer.Layer<never> = Layer.effectContext(
  Effect.map(Effect.all([Effect.serviceOption(Llm), Effect.serviceOption(Catalog)]), ([llm, catalog]) => {
    const withLlm = llm._tag === "Some" ? Context.make(Llm, timedLlm(llm.value)) : Context.empty()
    return catalog._tag === "Some" ? Context.add(withLlm, Catalog, timedCatalog(catalog.value)) : withLlm
  })
)
