/**
 * The gateway's front middleware: what every request gets around its route, in one synchronous step on the way in
 * and one exit handler on the way out:
 *
 * - its server span while nothing is exported (Telemetry.startServerSpan; the platform's tracer makes it otherwise);
 * - its request id (the `x-sluice-request-id` header, its logs and span) and its `x-sluice-overhead-ms` header
 *   (RequestId.ts, Overhead.ts);
 * - the drain (DrainMiddleware.ts): refused while draining, counted in flight until its answer is written, its
 *   answer ended at the drain deadline;
 * - its metrics: in flight, then counted and timed by route, method and status (Recorders.httpStarted/httpEnded).
 *
 * Choices:
 * - One middleware, not four: as four (span, metrics, request id, drain), each with its own step, fiber-ref updates,
 *   pre-response handler and exit handler, they were ~80 of the ~380 runtime steps of a gateway `/api/chat`
 *   (bench/gateway-steps.ts). Their parts stay in their modules; this one puts them together.
 * - The server writes the answer inside the app it runs, a streamed body included, so the exit handler runs once the
 *   last byte went to Node: it ends the span, the count in flight and the request's metrics.
 * - The status recorded is the one written: the pre-response handler sees the final answer (a refusal, a failure the
 *   server made an answer of); only an answer the server made past it (a defect in a middleware) is read from the
 *   exit's cause.
 */
import { HttpApp, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Context, Effect, type Exit, FiberRef, FiberRefs, HashMap, Option, Ref, Tracer } from "effect"
import type * as Shutdown from "../Lifecycle/Shutdown.js"
import * as Recorders from "../Observability/Recorders.js"
import * as Telemetry from "../Observability/Telemetry.js"
import * as DrainMiddleware from "./DrainMiddleware.js"
import * as Overhead from "./Overhead.js"
import * as RequestId from "./RequestId.js"
import * as Respond from "./Respond.js"

type PreResponse = HttpApp.PreResponseHandler

/** `handler` after the pre-response handlers already set, as `HttpApp.appendPreResponseHandler` chains them. */
const appended = (handlers: Option.Option<PreResponse>, handler: PreResponse): Option.Option<PreResponse> =>
  Option.some(
    Option.isNone(handlers)
      ? handler
      : (request, response) => Effect.flatMap(handlers.value(request, response), (r) => handler(request, r))
  )

/** The front middleware (see the module comment); `route` names a URL's route for the metrics. */
export const middleware =
  (drain: Shutdown.Service, route: (url: string) => string) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.withFiberRuntime((fiber) => {
      const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
      const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
      const start = clock.unsafeCurrentTimeNanos()
      const labels = fiber.getFiberRef(FiberRef.currentMetricLabels)
      const id = RequestId.requestIdOf(request.headers["x-request-id"])
      const span = Telemetry.startServerSpan(fiber, request)
      const current = span ?? fiber.currentSpan
      if (current?._tag === "Span") current.attribute("sluice.request_id", id)
      const timer = Overhead.makeTimer()
      let counted = false
      let written: number | undefined = undefined
      const stamp = (response: HttpServerResponse.HttpServerResponse) => {
        written = response.status
        return Respond.withHeaders(response, {
          [RequestId.requestIdHeader]: id,
          [RequestId.overheadHeader]: RequestId.overheadMs(clock.unsafeCurrentTimeNanos() - start - timer.upstreamNanos)
        })
      }
      const respond: PreResponse = (answered, response) =>
        counted
          ? Effect.map(DrainMiddleware.answer(drain, answered, response), stamp)
          : Effect.sync(() => stamp(response))
      const set = Effect.updateFiberRefs((fiberId, refs) =>
        FiberRefs.updateManyAs(refs, {
          entries: [
            [
              HttpApp.currentPreResponseHandlers,
              [[fiberId, appended(fiber.getFiberRef(HttpApp.currentPreResponseHandlers), respond)]]
            ],
            [
              FiberRef.currentLogAnnotations,
              [[fiberId, HashMap.set(fiber.getFiberRef(FiberRef.currentLogAnnotations), "requestId", id)]]
            ],
            [Overhead.currentTimer, [[fiberId, timer]]],
            ...(span === undefined
              ? []
              : [
                  [
                    FiberRef.currentContext,
                    [[fiberId, Context.add(fiber.currentContext, Tracer.ParentSpan, span)]]
                  ] as const
                ])
          ]
        })
      )
      Recorders.httpStarted(labels)
      const end = (exit: Exit.Exit<unknown, unknown>, status: number) =>
        Effect.sync(() => {
          if (span !== undefined) Telemetry.endServerSpan(fiber, span, exit)
          const durationMs = Number(clock.unsafeCurrentTimeNanos() - start) / 1e6
          Recorders.httpEnded({ route: route(request.url), method: request.method, status, durationMs }, labels)
        })
      const ended = (exit: Exit.Exit<HttpServerResponse.HttpServerResponse, E>) => {
        const recorded =
          written !== undefined
            ? end(exit, written)
            : exit._tag === "Success"
              ? end(exit, exit.value.status)
              : Effect.flatMap(HttpServerError.causeResponse(exit.cause), ([response]) => end(exit, response.status))
        return counted
          ? Effect.zipRight(
              Ref.update(drain.inFlight, (n) => n - 1),
              recorded
            )
          : recorded
      }
      const served = Effect.flatMap(Ref.get(drain.draining), (draining) => {
        if (draining) return Effect.succeed(DrainMiddleware.refusal())
        counted = true
        return Effect.zipRight(
          Ref.update(drain.inFlight, (n) => n + 1),
          app
        )
      })
      return Effect.onExit(Effect.zipRight(set, served), ended)
    })
