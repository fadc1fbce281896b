/**
 * Gateway middleware that stamps every response (success, refusal, 404, drain 503) with
 *
 * - `x-sluice-request-id`: the client's `x-request-id` when it is sane (1–128 of `[A-Za-z0-9._:-]`), otherwise a
 *   fresh random id; it also annotates the request's logs and span;
 * - `x-sluice-overhead-ms`: the time Sluice spent on the request up to its response headers, minus the time the
 *   handler waited on the engine (`Overhead.ts`). For a stream the headers leave with the first chunk, so the
 *   overhead covers everything until then. Milliseconds with two decimals.
 */
import { HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Context, Effect, FiberRef, FiberRefs, HashMap, Option } from "effect"
import * as Overhead from "./Overhead.js"

export const requestIdHeader = "x-sluice-request-id"
export const overheadHeader = "x-sluice-overhead-ms"

const sane = /^[A-Za-z0-9._:-]{1,128}$/

const freshId = (): string => globalThis.crypto.randomUUID().replaceAll("-", "")

/** The client's `x-request-id` if it is sane, else a new random id. */
export const requestIdOf = (incoming: string | undefined): string =>
  incoming !== undefined && sane.test(incoming) ? incoming : freshId()

const millis = (nanos: bigint): string => (Number(nanos < 0n ? 0n : nanos) / 1e6).toFixed(2)

type PreResponse = HttpApp.PreResponseHandler

/** `handler` after the pre-response handlers already set, as `HttpApp.appendPreResponseHandler` chains them. */
const appended = (handlers: Option.Option<PreResponse>, handler: PreResponse): Option.Option<PreResponse> =>
  Option.some(
    Option.isNone(handlers)
      ? handler
      : (request, response) => Effect.flatMap(handlers.value(request, response), (r) => handler(request, r))
  )

/**
 * Stamps the request id and the overhead on every response, and times the engine calls of the request. Written as
 * one synchronous step on the request's fiber (its context, clock and fiber refs read and set directly), not a
 * chain of effects: it runs for every request, where each Effect step costs (bench/gateway). The request has a
 * fiber of its own, so its log annotation is set on the fiber rather than scoped with `Effect.annotateLogs`.
 */
export const middleware = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.withFiberRuntime((fiber) => {
    const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
    const id = requestIdOf(request.headers["x-request-id"])
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const start = clock.unsafeCurrentTimeNanos()
    const timer = Overhead.makeTimer()
    const stamp: PreResponse = (_request, response) =>
      Effect.sync(() =>
        HttpServerResponse.setHeaders(response, {
          [requestIdHeader]: id,
          [overheadHeader]: millis(clock.unsafeCurrentTimeNanos() - start - timer.upstreamNanos)
        })
      )
    const span = fiber.currentSpan
    if (span?._tag === "Span") span.attribute("sluice.request_id", id)
    const stamped = Effect.updateFiberRefs((fiberId, refs) =>
      FiberRefs.updateManyAs(refs, {
        entries: [
          [
            HttpApp.currentPreResponseHandlers,
            [[fiberId, appended(fiber.getFiberRef(HttpApp.currentPreResponseHandlers), stamp)]]
          ],
          [
            FiberRef.currentLogAnnotations,
            [[fiberId, HashMap.set(fiber.getFiberRef(FiberRef.currentLogAnnotations), "requestId", id)]]
          ]
        ]
      })
    )
    return Effect.zipRight(Effect.zipRight(stamped, Overhead.measure(timer)), app)
  })
