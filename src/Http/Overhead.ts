/**
 * Measures how long one gateway request waits on the engine, so `x-sluice-overhead-ms` can report the rest: the
 * time Sluice itself spent (reading and validating the body, translating, serialising, middleware).
 *
 * The request's `Llm` and `Catalog` are swapped for timed copies (see `RequestId.middleware`): every engine call a
 * route makes adds its duration to the request's `Timer`, and for a stream every pull is timed. The routes need no
 * change. What happens inside the engine (cache lookups, queueing, retries, the backend itself) counts as upstream
 * here; the engine's own share is in its metrics (`sluice_llm_request_duration_seconds` against
 * `sluice_llm_upstream_duration_seconds`).
 */
import { Clock, Effect, Stream } from "effect"
import { Catalog } from "../Llm/Catalog.js"
import { Llm } from "../Llm/Llm.js"

/** The time one request has spent waiting on the engine so far. */
export interface Timer {
  upstreamNanos: bigint
}

export const makeTimer = (): Timer => ({ upstreamNanos: 0n })

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

/** The engine with every call the gateway makes timed. */
export const timedLlm = (llm: Llm, timer: Timer): Llm => {
  const time = timed(timer)
  const timeStream = timedStream(timer)
  return Llm.make({
    ...llm,
    chatServed: (req, call) => time(llm.chatServed(req, call)),
    chatStream: (req, call) => timeStream(llm.chatStream(req, call)),
    generateServed: (req, call) => time(llm.generateServed(req, call)),
    generateStream: (req, call) => timeStream(llm.generateStream(req, call)),
    embedServed: (req, call) => time(llm.embedServed(req, call))
  })
}

/** The catalog with every read timed. */
export const timedCatalog = (catalog: Catalog, timer: Timer): Catalog => {
  const time = timed(timer)
  return Catalog.make({
    ...catalog,
    list: time(catalog.list),
    ps: time(catalog.ps),
    version: time(catalog.version),
    show: (req) => time(catalog.show(req)),
    embeddings: (req) => time(catalog.embeddings(req))
  })
}

/** Runs `effect` with the request's engine and catalog timed into `timer` (when they are in context). */
export const provideTimed =
  (timer: Timer) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(Effect.all([Effect.serviceOption(Llm), Effect.serviceOption(Catalog)]), ([llm, catalog]) => {
      const withLlm = llm._tag === "Some" ? Effect.provideService(effect, Llm, timedLlm(llm.value, timer)) : effect
      return catalog._tag === "Some"
        ? Effect.provideService(withLlm, Catalog, timedCatalog(catalog.value, timer))
        : withLlm
    })
