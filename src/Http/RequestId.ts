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
import { Clock, Effect } from "effect"
import * as Overhead from "./Overhead.js"

export const requestIdHeader = "x-sluice-request-id"
export const overheadHeader = "x-sluice-overhead-ms"

const sane = /^[A-Za-z0-9._:-]{1,128}$/

const freshId = (): string => globalThis.crypto.randomUUID().replaceAll("-", "")

/** The client's `x-request-id` if it is sane, else a new random id. */
export const requestIdOf = (incoming: string | undefined): string =>
  incoming !== undefined && sane.test(incoming) ? incoming : freshId()

const millis = (nanos: bigint): string => (Number(nanos < 0n ? 0n : nanos) / 1e6).toFixed(2)

/** Stamps the request id and the overhead on every response, and times the engine calls of the request. */
export const middleware = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const id = requestIdOf(request.headers["x-request-id"])
    const start = yield* Clock.currentTimeNanos
    const timer = Overhead.makeTimer()
    yield* HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.map(Clock.currentTimeNanos, (now) =>
        HttpServerResponse.setHeaders(response, {
          [requestIdHeader]: id,
          [overheadHeader]: millis(now - start - timer.upstreamNanos)
        })
      )
    )
    yield* Effect.annotateCurrentSpan("sluice.request_id", id)
    yield* Overhead.measure(timer)
    return yield* Effect.annotateLogs(app, "requestId", id)
  })
