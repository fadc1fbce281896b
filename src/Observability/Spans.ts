/**
 * Spans on the hot path, made only when they go somewhere.
 *
 * Without an exporter (Telemetry.ts) the tracer is Effect's built-in one: its spans live in memory and nobody
 * reads them except for their ids, which the logs (Logging.ts) and Ollama (`traceparent`) take from the nearest
 * span. So the engine's per-call spans (`Llm.<method>`, `OllamaClient.<method>`) are made only while another
 * tracer is installed; otherwise the call runs in the span around it (the gateway request's, if any), whose ids
 * the logs and Ollama still get. A span per call costs a few objects, a FiberRef update and an attribute map
 * (bench/overhead).
 */
import { Effect, type Fiber, type Tracer } from "effect"

/** Effect's built-in tracer: the one every fiber has unless a layer installs another. */
const builtIn: Tracer.Tracer = Effect.runSync(Effect.withFiberRuntime((fiber) => Effect.succeed(fiber.currentTracer)))

/** Whether the fiber's spans are exported (its tracer is not the built-in one). */
export const exported = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean => fiber.currentTracer !== builtIn

/** `Effect.withSpan`, made only when spans are exported (see the module comment). */
export const withSpan =
  (name: string, options: Tracer.SpanOptions) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withFiberRuntime((fiber) => (exported(fiber) ? Effect.withSpan(effect, name, options) : effect))

/** The W3C `traceparent` and `b3` headers of the fiber's current span, as @effect/platform's client sends them. */
export const propagation = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Record<string, string> | undefined => {
  const span = fiber.currentSpan
  if (span === undefined) return undefined
  const sampled = span.sampled ? "1" : "0"
  const parent = span._tag === "Span" && span.parent._tag === "Some" ? `-${span.parent.value.spanId}` : ""
  return {
    b3: `${span.traceId}-${span.spanId}-${sampled}${parent}`,
    traceparent: `00-${span.traceId}-${span.spanId}-0${sampled}`
  }
}
