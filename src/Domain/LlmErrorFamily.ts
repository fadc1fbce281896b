/**
 * What makes a class a member of the engine's error family (LlmError.ts): the TypeId that `isLlmError` checks, and
 * the properties the rest of Sluice reads of an error instead of its `_tag` (docs/architecture.md, "Adding an
 * error", lists them with their readers).
 *
 * Choices:
 * - A class declares its `Flags` in one object beside its fields (`member(Base, flags)`), every flag `off` unless
 *   listed; a flag is a constant or a function of the error (HttpStatusError's `status >= 500`). They become
 *   getters on the prototype, not fields: they are not encoded, and `toJSON` and logs do not show them.
 * - `status` is declared here and given by each class, as a getter or as the backend's own status field
 *   (InvalidRequest, HttpStatusError): both API families answer with it. OpenAI's error `type` follows from it
 *   (`openAiType`); `openAi` is the whole error object, which a class may reword (ModelNotFound).
 * - `retryable` is what a caller is told (trying again later may succeed); `retried` is what the engine's own
 *   policy does, narrower: 503 busy is re-queued instead, and Sluice's refusals that a retry would defeat (a full
 *   queue, a rate limit, an open breaker on every backend) go back to the caller with their Retry-After.
 * - The TypeId is on the prototype (not an own field, so structural equality and JSON ignore it), like the TypeId
 *   of @effect/platform's `TypeIdError`; a lookalike with the same `_tag` is not a member.
 */
import type { Cause } from "effect"

export const TypeId: unique symbol = Symbol.for("sluice/LlmError")
export type TypeId = typeof TypeId

/** What the parts of Sluice read of an error, besides its `status` and `retryAfterMs`. */
export interface Flags {
  /** Trying again later may succeed: what a caller is told. */
  readonly retryable: boolean
  /** The engine's retry policy tries again (Retry.ts); implies `retryable`. */
  readonly retried: boolean
  /** The call goes at once to another backend, without spending a retry (Pipeline.ts). */
  readonly rerouted: boolean
  /** The backend is unwell: a failure for its circuit breaker (CircuitBreaker.ts). */
  readonly backendFailure: boolean
  /** The backend is full (503 busy): the call is re-queued (Retry.requeue) and the breaker counts nothing. */
  readonly backpressure: boolean
  /** The backend is overloaded: its adaptive concurrency limit drops (Slots.classify). */
  readonly overload: boolean
  /** Sluice's own refusal, made before any backend answered: the breaker counts nothing. */
  readonly local: boolean
  /** A fallback may answer instead (Fallback.ts). */
  readonly mendable: boolean
}

/** OpenAI's error object, the body of `{"error": ...}` on `/v1` (`param` aside: only a refused body names one). */
export interface OpenAiError {
  readonly message: string
  readonly type: string
  readonly code: string | null
}

/** OpenAI's error `type` for an HTTP status. */
export const openAiType = (status: number): string =>
  status === 404 ? "not_found_error" : status === 400 || status === 413 ? "invalid_request_error" : "api_error"

type Declared<Self> = { readonly [K in keyof Flags]: boolean | ((self: Self) => boolean) }

/** Every flag off: a class lists the ones it turns on. */
export const off: Flags = {
  retryable: false,
  retried: false,
  rerouted: false,
  backendFailure: false,
  backpressure: false,
  overload: false,
  local: false,
  mendable: false
}

// `any` arguments: TypeScript takes a class expression's base as a mixin only when typed so.
type ErrorClass = abstract new (...args: Array<any>) => Cause.YieldableError

/**
 * What `member` adds to an error class, as a named shape: a class extending `member(...)` then gets a declaration
 * (`.d.ts`) that names this class instead of spelling out every inherited member of `Cause.YieldableError`, whose
 * symbol-keyed members a declaration cannot name.
 */
export declare abstract class Member implements Flags {
  constructor(...args: Array<any>)
  /** The HTTP status the gateway answers with, on both API families. */
  abstract readonly status: number
  /** The Retry-After hint in milliseconds, on the errors that carry one. */
  readonly retryAfterMs?: number | undefined
  get [TypeId](): TypeId
  get retryable(): boolean
  get retried(): boolean
  get rerouted(): boolean
  get backendFailure(): boolean
  get backpressure(): boolean
  get overload(): boolean
  get local(): boolean
  get mendable(): boolean
  /** OpenAI's error object for this error. */
  get openAi(): OpenAiError
}

/** `Base` (a `Schema.TaggedError` class) as a member of the family: the TypeId, and `flags` as getters. */
export const member = <B extends ErrorClass>(Base: B, flags: Declared<InstanceType<B>>): B & typeof Member => {
  const read = (key: keyof Flags, self: unknown): boolean => {
    const flag = flags[key]
    return typeof flag === "function" ? flag(self as InstanceType<B>) : flag
  }
  abstract class FamilyMember extends Base implements Flags {
    abstract readonly status: number
    declare readonly retryAfterMs?: number | undefined
    get [TypeId](): TypeId {
      return TypeId
    }
    get retryable() {
      return read("retryable", this)
    }
    get retried() {
      return read("retried", this)
    }
    get rerouted() {
      return read("rerouted", this)
    }
    get backendFailure() {
      return read("backendFailure", this)
    }
    get backpressure() {
      return read("backpressure", this)
    }
    get overload() {
      return read("overload", this)
    }
    get local() {
      return read("local", this)
    }
    get mendable() {
      return read("mendable", this)
    }
    get openAi(): OpenAiError {
      return { message: this.message, type: openAiType(this.status), code: null }
    }
  }
  return FamilyMember
}
