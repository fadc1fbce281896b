/**
 * Unary exchanges straight on the pool's undici dispatcher: the engine's hot path (every chat, generate and embed
 * it makes for a caller). One `dispatch` with a handler that collects the body, parses and checks it (Decode.ts)
 * and resumes the calling fiber once: no HttpClientRequest, Headers, URL, web stream, AbortController or span
 * per call. @effect/platform's HttpClient on the same pool cost ~4x raw undici per call (bench/overhead).
 *
 * Same behaviour as Transport.ts: the pool's timeouts (passed per request, as its interceptor does) and DNS cache
 * (the dispatcher is the pool's), the same error mapping (ErrorMapping.ts: undici's timeout codes to TimeoutError,
 * anything else to TransportError, statuses to their errors), and interruption aborts the request, queued or
 * sent. Choice: while a tracer exports spans (Observability/Spans.ts), calls go through the HttpClient path,
 * whose client span and `traceparent` tie Ollama's work into the trace; otherwise the current span's ids (if any)
 * are still sent as `traceparent` and `b3`.
 * - A deadline handed down with the call (Deadline.ts, the engine's attempt timeout) is one `setTimeout` beside the
 *   request: at the instant the request is aborted and the call fails with the deadline's error. On the traced
 *   path it is `Effect.timeoutFail` (a traced call pays for its span anyway).
 * - A `Cut` attached to the fiber (Cut.ts, a hedge that won) ends the exchange the same way, as an interruption.
 */
import type * as Undici from "@effect/platform-node/Undici"
import { Clock, Effect } from "effect"
import type { OllamaError } from "../Domain/LlmError.js"
import * as Spans from "../Observability/Spans.js"
import * as Cut from "./Cut.js"
import * as Deadline from "./Deadline.js"
import type { Decode } from "./Decode.js"
import { type CallContext, fromStatus, fromUndiciError } from "./ErrorMapping.js"
import type * as Pool from "./Pool.js"
import { type Call, contextOf, decodeBody, isOk, type Request, type Transport } from "./Transport.js"

/** What the direct exchanges need: the pool, where the server is, and headers every request carries. */
export interface Target {
  readonly dispatcher: Undici.Dispatcher
  /** The base URL without credentials. */
  readonly backend: string
  readonly headers: Readonly<Record<string, string>>
  readonly deadlines: Pool.Resolved
}

interface Answer {
  readonly status: number
  readonly headers: ReadonlyArray<Buffer>
  readonly text: string
  /** The body's length in bytes. */
  readonly bytes: number
}

/** A header of a raw undici header list (name, value, name, value, ...), case-insensitive. */
const header = (raw: ReadonlyArray<Buffer>, name: string): string | undefined => {
  for (let i = 0; i + 1 < raw.length; i += 2)
    if (raw[i]!.toString("latin1").toLowerCase() === name) return raw[i + 1]!.toString()
  return undefined
}

const statusError = (ctx: CallContext, answer: Answer): Effect.Effect<never, OllamaError> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.fail(
      fromStatus(ctx, answer.status, { "retry-after": header(answer.headers, "retry-after") }, answer.text, now)
    )
  )

/** The unary exchanges over `target`, falling back to `traced` while spans are exported. */
export const make = (target: Target, traced: Transport): Transport => {
  const url = new URL(target.backend)
  const origin = url.origin
  const base = url.pathname === "/" ? "" : url.pathname
  const { headersTimeoutMs, bodyTimeoutMs } = target.deadlines
  const plain = { accept: "application/json", ...target.headers }
  const withBody = { ...plain, "content-type": "application/json" }

  /** One request; `then` turns the whole answer into the result inside undici's callback. */
  const exchange = <A>(
    ctx: CallContext,
    request: Request,
    fiberHeaders: Record<string, string> | undefined,
    deadline: Deadline.Deadline | undefined,
    cut: Cut.Cut | undefined,
    then: (answer: Answer) => Effect.Effect<A, OllamaError>
  ): Effect.Effect<A, OllamaError> =>
    Effect.async<A, OllamaError>((resume) => {
      if (cut?.cut === true) return resume(Effect.interrupt)
      const chunks: Array<Buffer> = []
      let bytes = 0
      let status = 0
      let raw: ReadonlyArray<Buffer> = []
      let abort: ((reason?: Error) => void) | undefined
      let finished = false
      let timer: ReturnType<typeof setTimeout> | undefined
      const headers = request.body === undefined ? plain : withBody
      if (deadline !== undefined) {
        const left = deadline.atMs - Date.now()
        if (left <= 0) return resume(Effect.fail(deadline.error()))
        timer = setTimeout(() => {
          if (finished) return
          finished = true
          abort?.()
          resume(Effect.fail(deadline.error()))
        }, left)
      }
      if (cut !== undefined) {
        const end = () => {
          if (finished) return
          finished = true
          if (timer !== undefined) clearTimeout(timer)
          abort?.()
          resume(Effect.interrupt)
        }
        cut.end = end
      }
      const handler: Undici.Dispatcher.DispatchHandler = {
        onConnect: (abortRequest) => {
          if (finished) abortRequest()
          else abort = abortRequest
        },
        onHeaders: (statusCode, rawHeaders) => {
          status = statusCode
          raw = rawHeaders as unknown as ReadonlyArray<Buffer>
          return true
        },
        onData: (chunk) => {
          chunks.push(chunk)
          bytes += chunk.length
          return true
        },
        onComplete: () => {
          if (finished) return
          finished = true
          if (timer !== undefined) clearTimeout(timer)
          if (cut !== undefined) cut.end = undefined
          const text = chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8")
          resume(then({ status, headers: raw, text, bytes }))
        },
        onError: (error) => {
          if (finished) return
          finished = true
          if (timer !== undefined) clearTimeout(timer)
          if (cut !== undefined) cut.end = undefined
          resume(Effect.fail(fromUndiciError(ctx, target.deadlines)(error)))
        }
      }
      target.dispatcher.dispatch(
        {
          origin,
          path: base + request.path,
          method: request.verb,
          // merged by Object.assign, not spread: see Observability/Track.ts `upstream`
          headers: fiberHeaders === undefined ? headers : Object.assign({}, headers, fiberHeaders),
          body: request.body === undefined ? null : JSON.stringify(request.body),
          headersTimeout: headersTimeoutMs,
          bodyTimeout: bodyTimeoutMs
        },
        handler
      )
      return Effect.sync(() => {
        if (finished) return
        finished = true
        if (timer !== undefined) clearTimeout(timer)
        if (cut !== undefined) cut.end = undefined
        abort?.()
      })
    })

  const routed = <A>(
    viaHttp: () => Effect.Effect<A, OllamaError>,
    direct: (
      headers: Record<string, string> | undefined,
      deadline: Deadline.Deadline | undefined,
      cut: Cut.Cut | undefined
    ) => Effect.Effect<A, OllamaError>
  ): Effect.Effect<A, OllamaError> =>
    Effect.withFiberRuntime((fiber) => {
      const deadline = Deadline.take(fiber)
      if (!Spans.exported(fiber)) return direct(Spans.propagation(fiber), deadline, Cut.of(fiber))
      if (deadline === undefined) return viaHttp()
      return Effect.timeoutFail(viaHttp(), {
        duration: Math.max(0, deadline.atMs - Date.now()),
        onTimeout: deadline.error
      })
    })

  return {
    json: <A>(call: Call, request: Request, decode: Decode<A>) => {
      const ctx = contextOf(target.backend, call)
      return routed(
        () => traced.json(call, request, decode),
        (headers, deadline, cut) =>
          exchange(ctx, request, headers, deadline, cut, (answer) =>
            isOk(answer.status) ? decodeBody(ctx, answer.text, decode, answer.bytes) : statusError(ctx, answer)
          )
      )
    },
    unit: (call, request) => {
      const ctx = contextOf(target.backend, call)
      return routed(
        () => traced.unit(call, request),
        (headers, deadline, cut) =>
          exchange(ctx, request, headers, deadline, cut, (answer) =>
            isOk(answer.status) ? Effect.void : statusError(ctx, answer)
          )
      )
    },
    stream: traced.stream
  }
}
