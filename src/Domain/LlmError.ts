/**
 * The engine's error family (ARCHITECTURE.md §4). Every error is a tagged, schema-backed class with structured
 * fields, a readable `message`, and the properties the rest of Sluice reads to decide what to do with it (declared
 * here per class, defined in LlmErrorFamily.ts): whether the engine retries it, whether it counts against a circuit
 * breaker or lowers a backend's concurrency limit, whether a fallback may answer instead, which status and body
 * the gateway answers with. No reader matches `_tag` strings, so adding an error touches this module only
 * (docs/architecture.md, "Adding an error").
 *
 * It holds the protocol errors the Ollama client produces and the engine's own (breaker, rate limiter, queue,
 * budget, shutdown), with `isLlmError` for values of unknown type.
 */
import { Predicate, Schema } from "effect"
import { type Flags, member, off, type OpenAiError, TypeId } from "./LlmErrorFamily.js"

export { type Flags, type OpenAiError, TypeId } from "./LlmErrorFamily.js"

const common = {
  /** The backend the call went to, as a URL origin (never a prompt or a key). */
  backend: Schema.String,
  /** The client method, e.g. "chat" or "embed". */
  method: Schema.String
}

/** The backend is unwell: retried (on another backend when there is one), counted by its breaker, mendable. */
const backendFault: Flags = { ...off, retryable: true, retried: true, backendFailure: true, mendable: true }

/** The connection failed: refused, reset, DNS, socket closed mid-response. */
export class TransportError extends member(
  Schema.TaggedError<TransportError>()("TransportError", {
    ...common,
    reason: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }),
  backendFault
) {
  get status() {
    return 502
  }
  override get message() {
    return `${this.method}: cannot reach ${this.backend}: ${this.reason}`
  }
}

/** A connect, headers, body-idle or whole-call deadline passed. */
export class TimeoutError extends member(
  Schema.TaggedError<TimeoutError>()("TimeoutError", {
    ...common,
    /** connect/headers/body: the socket; first-token/idle: a stream; attempt: one try; deadline: the whole call. */
    phase: Schema.Literal("connect", "headers", "body", "call", "attempt", "first-token", "idle", "deadline"),
    timeoutMs: Schema.optional(Schema.Number)
  }),
  { ...backendFault, overload: true }
) {
  get status() {
    return 504
  }
  override get message() {
    const after = this.timeoutMs === undefined ? "" : ` after ${this.timeoutMs} ms`
    return `${this.method}: ${this.backend} timed out waiting for ${this.phase}${after}`
  }
}

/** 404 from Ollama: the model is not there (pull it, or fix the name). An `alternate` fallback may serve. */
export class ModelNotFound extends member(
  Schema.TaggedError<ModelNotFound>()("ModelNotFound", { ...common, model: Schema.String, body: Schema.String }),
  { ...off, mendable: true }
) {
  get status() {
    return 404
  }
  override get message() {
    return this.body
  }
  /** One message for an unknown model on every `/v1` route (Ollama's embed handler words it differently). */
  override get openAi(): OpenAiError {
    return { ...super.openAi, message: `model '${this.model}' not found` }
  }
}

/**
 * 503 from Ollama: its scheduling queue is full. Backpressure, not ill health: the backend's limit drops and the
 * call is re-queued without spending a retry.
 */
export class ServerBusy extends member(
  Schema.TaggedError<ServerBusy>()("ServerBusy", {
    ...common,
    body: Schema.String,
    retryAfterMs: Schema.optional(Schema.Number)
  }),
  { ...off, retryable: true, backpressure: true, overload: true, mendable: true }
) {
  get status() {
    return 503
  }
  override get message() {
    return this.body
  }
}

/** Any other 4xx: the request itself is wrong; retrying cannot help, nor can a fallback. */
export class InvalidRequest extends member(
  Schema.TaggedError<InvalidRequest>()("InvalidRequest", { ...common, status: Schema.Number, body: Schema.String }),
  off
) {
  override get message() {
    return this.body
  }
}

const serverSide = (e: { readonly status: number }) => e.status >= 500

/** A 5xx other than 503 (runner crash, load failure, out of memory), or another status no other error covers. */
export class HttpStatusError extends member(
  Schema.TaggedError<HttpStatusError>()("HttpStatusError", { ...common, status: Schema.Number, body: Schema.String }),
  { ...off, retryable: serverSide, retried: serverSide, backendFailure: serverSide, mendable: true }
) {
  override get message() {
    return `${this.method}: ${this.backend} answered ${this.status}: ${this.body}`
  }
}

/** A body or a stream line that is not what the protocol says: the backend answered, so its breaker counts a success. */
export class DecodeError extends member(
  Schema.TaggedError<DecodeError>()("DecodeError", { ...common, reason: Schema.String }),
  { ...off, mendable: true }
) {
  get status() {
    return 502
  }
  override get message() {
    return `${this.method}: cannot decode the answer of ${this.backend}: ${this.reason}`
  }
}

/** A `{"error": ...}` line in the middle of a stream (the status was already 200). */
export class StreamError extends member(
  Schema.TaggedError<StreamError>()("StreamError", { ...common, body: Schema.String, chunks: Schema.Number }),
  backendFault
) {
  get status() {
    return 502
  }
  override get message() {
    return this.body
  }
}

/** A stream that ended without its `done: true` line. */
export class StreamIncomplete extends member(
  Schema.TaggedError<StreamIncomplete>()("StreamIncomplete", { ...common, chunks: Schema.Number }),
  backendFault
) {
  get status() {
    return 502
  }
  override get message() {
    return `${this.method}: the stream from ${this.backend} ended after ${this.chunks} chunks without done:true`
  }
}

/** Everything the Ollama client can fail with. */
export const OllamaError = Schema.Union(
  TransportError,
  TimeoutError,
  ModelNotFound,
  ServerBusy,
  InvalidRequest,
  HttpStatusError,
  DecodeError,
  StreamError,
  StreamIncomplete
)
export type OllamaError = typeof OllamaError.Type

/** The `backend` of a CircuitOpen raised because every backend's breaker is open. */
export const everyBackend = "every backend"

/** Sluice's own refusal, before any backend: the caller may come back (after its Retry-After), a fallback may serve. */
const refusal: Flags = { ...off, retryable: true, local: true, mendable: true }

const oneBackend = (e: { readonly backend: string }) => e.backend !== everyBackend

/**
 * The circuit breaker of a backend is open: the call fails fast without touching the network. On one backend
 * (its breaker turned after the choice) the call goes to another one; on every backend it goes back to the caller.
 */
export class CircuitOpen extends member(
  Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
    backend: Schema.String,
    /** When the breaker lets a probe through again. */
    retryAfterMs: Schema.Number
  }),
  { ...refusal, retried: oneBackend, rerouted: oneBackend }
) {
  get status() {
    return 503
  }
  override get message() {
    return `the circuit breaker of ${this.backend} is open; retry in ${Math.ceil(this.retryAfterMs)} ms`
  }
}

/** A rate limit would make the caller wait longer than it may. */
export class RateLimited extends member(
  Schema.TaggedError<RateLimited>()("RateLimited", {
    /** What is limited: a backend URL, an API key name, ... */
    scope: Schema.String,
    limit: Schema.Literal("requests", "tokens"),
    retryAfterMs: Schema.Number
  }),
  refusal
) {
  get status() {
    return 429
  }
  override get message() {
    return `rate limit on ${this.limit} reached for ${this.scope}; retry in ${Math.ceil(this.retryAfterMs)} ms`
  }
}

/**
 * A decision that must be shared across instances (a rate limit kept in Redis) could not be made: the shared store
 * does not answer and `SLUICE_REDIS_FALLBACK=closed` refuses to decide without it. 503, like the other refusals.
 */
export class SharedStoreUnavailable extends member(
  Schema.TaggedError<SharedStoreUnavailable>()("SharedStoreUnavailable", {
    /** What the store was asked for: "limits", ... */
    use: Schema.String,
    /** What is limited: a backend URL, an API key, ... */
    scope: Schema.String,
    retryAfterMs: Schema.Number
  }),
  refusal
) {
  get status() {
    return 503
  }
  override get message() {
    return `the shared ${this.use} for ${this.scope} cannot be checked: Redis does not answer and SLUICE_REDIS_FALLBACK=closed refuses to decide without it; retry in ${Math.ceil(this.retryAfterMs)} ms`
  }
}

/** The scheduler's queue is full and the call chose not to wait. */
export class QueueFull extends member(
  Schema.TaggedError<QueueFull>()("QueueFull", { capacity: Schema.Number, retryAfterMs: Schema.Number }),
  refusal
) {
  get status() {
    return 503
  }
  override get message() {
    return `the queue is full (${this.capacity} calls waiting); retry in ${Math.ceil(this.retryAfterMs)} ms`
  }
}

/** A budget scope (an agent tick, an episode, an API key) has used up one of its limits: the caller's own answer. */
export class BudgetExceeded extends member(
  Schema.TaggedError<BudgetExceeded>()("BudgetExceeded", {
    /** The budget scope's name, e.g. "tick" or "episode". */
    budget: Schema.String,
    limit: Schema.Literal("calls", "tokens", "time"),
    used: Schema.Number,
    max: Schema.Number
  }),
  { ...off, local: true }
) {
  get status() {
    return 429
  }
  override get message() {
    return `budget "${this.budget}" ran out of ${this.limit}: used ${this.used} of ${this.max}`
  }
}

/** Sluice is shutting down and takes no new work. */
export class ShuttingDown extends member(Schema.TaggedError<ShuttingDown>()("ShuttingDown", {}), {
  ...off,
  retryable: true,
  retried: true,
  local: true
}) {
  get status() {
    return 503
  }
  override get message() {
    return "Sluice is shutting down and takes no new calls"
  }
}

/** Everything the engine (`Llm`) can fail with. */
export const LlmError = Schema.Union(
  OllamaError,
  CircuitOpen,
  RateLimited,
  SharedStoreUnavailable,
  QueueFull,
  BudgetExceeded,
  ShuttingDown
)
export type LlmError = typeof LlmError.Type

/** Whether `u` is an error of the family (a member of `LlmError`). */
export const isLlmError = (u: unknown): u is LlmError => Predicate.hasProperty(u, TypeId)
