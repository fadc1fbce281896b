/**
 * The gateway's side of graceful shutdown (Lifecycle/Shutdown.ts holds the drain's state and finalizer): while
 * draining, a new request is refused with 503 `ShuttingDown` and `Retry-After: 5`; a request in flight is counted
 * until its last byte is handed to Node; at the drain deadline a unary answer still running ends with 503
 * `ShuttingDown`, and a streamed body ends with one error line in its own framing (NDJSON `{"error": ...}`, or an SSE
 * `data:` event in OpenAI's envelope for `/v1`).
 *
 * Choices:
 * - In Http, not Lifecycle: it builds the wire-format error bodies of both API families, and Lifecycle sits below
 *   Http (docs/architecture.md, "The dependency rule"). The refusal is `Respond.fromError`, the body every other
 *   engine error gets.
 */
import { HttpApp, HttpBody, HttpServerResponse } from "@effect/platform"
import { Chunk, Deferred, Effect, Option, Ref, Stream } from "effect"
import { ShuttingDown } from "../Domain/LlmError.js"
import type * as Shutdown from "../Lifecycle/Shutdown.js"
import * as OpenAiReply from "./OpenAiReply.js"
import * as Respond from "./Respond.js"

/** The refusal while draining, and the answer of a unary request ended at the deadline (Deadline.ts). */
const shuttingDown = () => HttpServerResponse.setHeader(Respond.fromError(new ShuttingDown()), "retry-after", "5")

/** The same in OpenAI's envelope, for a `/v1` request ended at the deadline. */
const shuttingDownOpenAi = () =>
  HttpServerResponse.setHeader(OpenAiReply.fromFailure(new ShuttingDown()), "retry-after", "5")

/**
 * The gateway middleware: refuses new requests while draining, counts requests in flight (a streamed one until
 * its body is written), ends a unary answer still running at the deadline with 503 ShuttingDown, and ends a
 * streamed body at the deadline with an error line.
 */
export const middleware =
  (drain: Shutdown.Service) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.flatMap(Ref.get(drain.draining), (draining) =>
      draining ? Effect.succeed(shuttingDown()) : Effect.suspend(() => counted(drain, app))
    )

/**
 * One request counted in flight. The server writes the answer inside the app (middleware only sees it after), so
 * a streamed body is wrapped by a pre-response handler. A unary request ended at the deadline (Deadline.ts) is
 * answered here, in its family's shape.
 */
const counted = <E, R>(drain: Shutdown.Service, app: HttpApp.Default<E, R>): HttpApp.Default<E, R> => {
  const done = Ref.update(drain.inFlight, (n) => n - 1)
  let streamed = false
  const follow = HttpApp.appendPreResponseHandler((request, response) =>
    Effect.map(Deferred.isDone(drain.deadline), (late) => {
      streamed = response.body._tag === "Stream"
      // a handler ended at the deadline leaves the server's empty 503: give it the error body its clients expect
      return late && response.status === 503 && response.body._tag === "Empty"
        ? request.url.startsWith("/v1/")
          ? shuttingDownOpenAi()
          : shuttingDown()
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

/** A streamed body counts until written, and ends at the drain deadline with `{"error": ...}` (no `done`). */
const followBody = (
  drain: Shutdown.Service,
  response: HttpServerResponse.HttpServerResponse,
  done: Effect.Effect<void>
): HttpServerResponse.HttpServerResponse => {
  const body = response.body
  if (body._tag !== "Stream") return response
  const stream = cutAtDeadline(drain, body.stream, finalLine(body.contentType)).pipe(Stream.ensuring(done))
  return HttpServerResponse.setBody(response, HttpBody.stream(stream, body.contentType, body.contentLength))
}

/** The last line of a stream cut at the deadline, in the stream's own framing (NDJSON, or SSE for /v1). */
const finalLine = (contentType: string | undefined): Uint8Array =>
  contentType?.startsWith("text/event-stream")
    ? OpenAiReply.errorEvent(new ShuttingDown())
    : Respond.errorLine(new ShuttingDown())

/**
 * Each pull races the deadline; once it passes, the error line goes out and the stream ends (the upstream is
 * interrupted when the stream's scope closes). A plain `Stream.interruptWhen` is not enough here: interrupting an
 * engine stream mid-pull surfaces as an interruption of the whole body, and the error line would never be sent.
 */
const cutAtDeadline = <E>(drain: Shutdown.Service, stream: Stream.Stream<Uint8Array, E>, line: Uint8Array) =>
  Stream.unwrapScoped(
    Effect.map(Stream.toPull(stream), (pull) => {
      let ended = false
      const cut = Effect.map(Effect.interruptible(Deferred.await(drain.deadline)), () => {
        ended = true
        return Chunk.of(line)
      })
      // disconnect: the race does not wait for the upstream pull to finish interrupting (aborting the request,
      // giving back its slot), which on a loaded machine took longer than the drain's wait for the error line
      const step = Effect.suspend(() =>
        ended ? Effect.fail(Option.none()) : Effect.raceFirst(Effect.disconnect(pull), cut)
      )
      return Stream.repeatEffectChunkOption(step)
    })
  )
