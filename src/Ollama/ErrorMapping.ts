/**
 * From what the HTTP layer reports to the engine's error family (ARCHITECTURE §4, `Domain/LlmError.ts`).
 *
 * - A status: 404 -> ModelNotFound, 503 -> ServerBusy (with Retry-After), other 4xx -> InvalidRequest,
 *   anything else that is not 2xx -> HttpStatusError. The body is the `error` field of a JSON body, else the text.
 * - An `HttpClientError` (a union: RequestError | ResponseError): its `cause` chain is searched for undici's
 *   timeout codes (-> TimeoutError with the phase); everything else is a TransportError (refused, reset, socket
 *   closed, DNS), described by the first error code and message found. @effect/platform labels body read
 *   failures `reason: "Decode"`, but they are socket failures; real decoding is done (and mapped) by this module's
 *   callers.
 */
import type { HttpClientError } from "@effect/platform"
import { Option } from "effect"
import {
  DecodeError,
  HttpStatusError,
  InvalidRequest,
  ModelNotFound,
  type OllamaError,
  ServerBusy,
  TimeoutError,
  TransportError
} from "../Domain/LlmError.js"

/** Who failed: the backend (no credentials), the client method and the model, for the error fields. */
export interface CallContext {
  readonly backend: string
  readonly method: string
  readonly model: string
}

/** The deadlines the pool enforces, to report them in TimeoutError (0 or absent = unknown). */
export interface Deadlines {
  readonly connectTimeoutMs?: number | undefined
  readonly headersTimeoutMs?: number | undefined
  readonly bodyTimeoutMs?: number | undefined
}

/** The common fields of every error, taken from the call context. */
export const where = (ctx: CallContext) => ({ backend: ctx.backend, method: ctx.method })

/** The `error` string of an Ollama error body, else the trimmed text, else `HTTP <status>`. */
export const errorText = (status: number, body: string): string => {
  try {
    const json: unknown = JSON.parse(body)
    if (typeof json === "object" && json !== null && "error" in json) {
      return typeof json.error === "string" ? json.error : JSON.stringify(json.error)
    }
  } catch {
    // not JSON: the text itself
  }
  const text = body.trim()
  return text === "" ? `HTTP ${status}` : text
}

/** `Retry-After` as delay seconds or an HTTP date, in milliseconds from `now`. */
export const retryAfterMs = (header: string | undefined, now: number): number | undefined => {
  if (header === undefined || header.trim() === "") return undefined
  const value = header.trim()
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** The error for a response whose status is not 2xx. */
export const fromStatus = (
  ctx: CallContext,
  status: number,
  headers: Readonly<Record<string, string | undefined>>,
  body: string,
  now: number
): OllamaError => {
  const text = errorText(status, body)
  if (status === 404) return new ModelNotFound({ ...where(ctx), model: ctx.model, body: text })
  if (status === 503) {
    const retryAfter = retryAfterMs(headers["retry-after"], now)
    return new ServerBusy({
      ...where(ctx),
      body: text,
      ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter })
    })
  }
  if (status >= 400 && status < 500) return new InvalidRequest({ ...where(ctx), status, body: text })
  return new HttpStatusError({ ...where(ctx), status, body: text })
}

const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

const messageOf = (error: unknown): string | undefined =>
  error instanceof Error && error.message !== "" ? error.message : undefined

/** The error and its causes (`cause`, `AggregateError.errors`), breadth first, cycles and depth bounded. */
export const causeChain = (error: unknown): ReadonlyArray<unknown> => {
  const seen: Array<unknown> = []
  const queue: Array<unknown> = [error]
  while (queue.length > 0 && seen.length < 32) {
    const next = queue.shift()
    if (next === undefined || next === null || seen.includes(next)) continue
    seen.push(next)
    if (typeof next === "object") {
      if ("cause" in next) queue.push(next.cause)
      if ("errors" in next && Array.isArray(next.errors)) queue.push(...next.errors)
    }
  }
  return seen
}

const timeoutPhases: Record<string, TimeoutError["phase"]> = {
  UND_ERR_CONNECT_TIMEOUT: "connect",
  UND_ERR_HEADERS_TIMEOUT: "headers",
  UND_ERR_BODY_TIMEOUT: "body",
  ETIMEDOUT: "connect"
}

const deadlineOf = (phase: TimeoutError["phase"], deadlines: Deadlines): number | undefined => {
  const ms =
    phase === "connect"
      ? deadlines.connectTimeoutMs
      : phase === "headers"
        ? deadlines.headersTimeoutMs
        : phase === "body"
          ? deadlines.bodyTimeoutMs
          : undefined
  return ms === undefined || ms <= 0 ? undefined : ms
}

/** Describes a transport failure: `CODE: message` of the most specific error in the chain. */
export const describe = (chain: ReadonlyArray<unknown>): string => {
  const coded = chain.filter((error) => codeOf(error) !== undefined)
  const specific = coded.length > 0 ? coded[coded.length - 1] : chain[chain.length - 1]
  const code = codeOf(specific)
  const message = messageOf(specific) ?? messageOf(chain[0]) ?? String(specific)
  return code === undefined || message.includes(code) ? message : `${code}: ${message}`
}

const timeoutOf = (ctx: CallContext, deadlines: Deadlines, chain: ReadonlyArray<unknown>): TimeoutError | undefined => {
  const phase = Option.firstSomeOf(chain.map((e) => Option.fromNullable(timeoutPhases[codeOf(e) ?? ""])))
  if (Option.isNone(phase)) return undefined
  const timeoutMs = deadlineOf(phase.value, deadlines)
  return new TimeoutError({ ...where(ctx), phase: phase.value, ...(timeoutMs === undefined ? {} : { timeoutMs }) })
}

/** The error for a failed exchange (connect, send, headers or body). */
export const fromHttpClientError =
  (ctx: CallContext, deadlines: Deadlines = {}) =>
  (error: HttpClientError.HttpClientError): OllamaError => {
    const chain = causeChain(error.cause)
    const timeout = timeoutOf(ctx, deadlines, chain)
    if (timeout !== undefined) return timeout
    if (error._tag === "RequestError" && error.reason !== "Transport") {
      return new TransportError({ ...where(ctx), reason: `${error.reason}: ${error.description ?? error.message}` })
    }
    const reason = chain.length === 0 ? error.message : describe(chain)
    return new TransportError({ ...where(ctx), reason, cause: error.cause })
  }

/** The same for an error undici reported itself (Direct.ts): a timeout code in its chain, else a TransportError. */
export const fromUndiciError =
  (ctx: CallContext, deadlines: Deadlines = {}) =>
  (error: unknown): OllamaError => {
    const chain = causeChain(error)
    return (
      timeoutOf(ctx, deadlines, chain) ??
      new TransportError({ ...where(ctx), reason: chain.length === 0 ? String(error) : describe(chain), cause: error })
    )
  }

/** The error for a body or a value that does not decode; `reason` is cut to a readable length. */
export const decodeError = (ctx: CallContext, reason: string): DecodeError =>
  new DecodeError({ ...where(ctx), reason: reason.length > 800 ? `${reason.slice(0, 800)}...` : reason })
