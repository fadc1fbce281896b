/**
 * The engine's error family (ARCHITECTURE.md §4). Every error is a tagged, schema-backed class with
 * structured fields, a readable `message`, and `retryable`: whether trying again may succeed.
 *
 * This module holds the protocol errors the Ollama client produces; later stages of the pipeline
 * (circuit breaker, rate limiter, queue, budget, shutdown) add theirs to the same union.
 */
import { Schema } from "effect"

const common = {
  /** The backend the call went to, as a URL origin (never a prompt or a key). */
  backend: Schema.String,
  /** The client method, e.g. "chat" or "embed". */
  method: Schema.String
}

/** The connection failed: refused, reset, DNS, socket closed mid-response. */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  ...common,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  get retryable() {
    return true
  }
  override get message() {
    return `${this.method}: cannot reach ${this.backend}: ${this.reason}`
  }
}

/** A connect, headers, body-idle or whole-call deadline passed. */
export class TimeoutError extends Schema.TaggedError<TimeoutError>()("TimeoutError", {
  ...common,
  /** connect/headers/body: the socket; first-token/idle: a stream; attempt: one try; deadline: the whole call. */
  phase: Schema.Literal("connect", "headers", "body", "call", "attempt", "first-token", "idle", "deadline"),
  timeoutMs: Schema.optional(Schema.Number)
}) {
  get retryable() {
    return true
  }
  override get message() {
    const after = this.timeoutMs === undefined ? "" : ` after ${this.timeoutMs} ms`
    return `${this.method}: ${this.backend} timed out waiting for ${this.phase}${after}`
  }
}

/** 404 from Ollama: the model is not there (pull it, or fix the name). */
export class ModelNotFound extends Schema.TaggedError<ModelNotFound>()("ModelNotFound", {
  ...common,
  model: Schema.String,
  body: Schema.String
}) {
  get retryable() {
    return false
  }
  get status() {
    return 404
  }
  override get message() {
    return this.body
  }
}

/** 503 from Ollama: its scheduling queue is full. Retry later. */
export class ServerBusy extends Schema.TaggedError<ServerBusy>()("ServerBusy", {
  ...common,
  body: Schema.String,
  retryAfterMs: Schema.optional(Schema.Number)
}) {
  get retryable() {
    return true
  }
  get status() {
    return 503
  }
  override get message() {
    return this.body
  }
}

/** Any other 4xx: the request itself is wrong; retrying cannot help. */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  ...common,
  status: Schema.Number,
  body: Schema.String
}) {
  get retryable() {
    return false
  }
  override get message() {
    return this.body
  }
}

/** A 5xx other than 503 (runner crash, load failure, out of memory). */
export class HttpStatusError extends Schema.TaggedError<HttpStatusError>()("HttpStatusError", {
  ...common,
  status: Schema.Number,
  body: Schema.String
}) {
  get retryable() {
    return this.status >= 500
  }
  override get message() {
    return `${this.method}: ${this.backend} answered ${this.status}: ${this.body}`
  }
}

/** A body or a stream line that is not what the protocol says. */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  ...common,
  reason: Schema.String
}) {
  get retryable() {
    return false
  }
  override get message() {
    return `${this.method}: cannot decode the answer of ${this.backend}: ${this.reason}`
  }
}

/** A `{"error": ...}` line in the middle of a stream (the status was already 200). */
export class StreamError extends Schema.TaggedError<StreamError>()("StreamError", {
  ...common,
  body: Schema.String,
  chunks: Schema.Number
}) {
  get retryable() {
    return true
  }
  override get message() {
    return this.body
  }
}

/** A stream that ended without its `done: true` line. */
export class StreamIncomplete extends Schema.TaggedError<StreamIncomplete>()("StreamIncomplete", {
  ...common,
  chunks: Schema.Number
}) {
  get retryable() {
    return true
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

/** The circuit breaker of a backend is open: the call fails fast without touching the network. */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  backend: Schema.String,
  /** When the breaker lets a probe through again. */
  retryAfterMs: Schema.Number
}) {
  get retryable() {
    return true
  }
  override get message() {
    return `the circuit breaker of ${this.backend} is open; retry in ${Math.ceil(this.retryAfterMs)} ms`
  }
}

/** A rate limit would make the caller wait longer than it may. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  /** What is limited: a backend URL, an API key name, ... */
  scope: Schema.String,
  limit: Schema.Literal("requests", "tokens"),
  retryAfterMs: Schema.Number
}) {
  get retryable() {
    return true
  }
  override get message() {
    return `rate limit on ${this.limit} reached for ${this.scope}; retry in ${Math.ceil(this.retryAfterMs)} ms`
  }
}

/** The scheduler's queue is full and the call chose not to wait. */
export class QueueFull extends Schema.TaggedError<QueueFull>()("QueueFull", {
  capacity: Schema.Number,
  retryAfterMs: Schema.Number
}) {
  get retryable() {
    return true
  }
  override get message() {
    return `the queue is full (${this.capacity} calls waiting); retry in ${Math.ceil(this.retryAfterMs)} ms`
  }
}

/** A budget scope (an agent tick, an episode, an API key) has used up one of its limits. */
export class BudgetExceeded extends Schema.TaggedError<BudgetExceeded>()("BudgetExceeded", {
  /** The budget scope's name, e.g. "tick" or "episode". */
  budget: Schema.String,
  limit: Schema.Literal("calls", "tokens", "time"),
  used: Schema.Number,
  max: Schema.Number
}) {
  get retryable() {
    return false
  }
  override get message() {
    return `budget "${this.budget}" ran out of ${this.limit}: used ${this.used} of ${this.max}`
  }
}

/** Sluice is shutting down and takes no new work. */
export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()("ShuttingDown", {}) {
  get retryable() {
    return true
  }
  override get message() {
    return "Sluice is shutting down and takes no new calls"
  }
}

/** Everything the engine (`Llm`) can fail with. */
export const LlmError = Schema.Union(OllamaError, CircuitOpen, RateLimited, QueueFull, BudgetExceeded, ShuttingDown)
export type LlmError = typeof LlmError.Type

/**
 * Whether a failure means the backend is unwell (so a circuit breaker counts it): transport failures, timeouts,
 * 5xx other than 503 busy, broken streams. A client's 4xx (bad request, unknown model) never counts, nor does 503
 * busy: that is backpressure (`isBackpressure`), a backend doing its job at capacity.
 */
export const isBackendFailure = (error: LlmError): boolean => {
  switch (error._tag) {
    case "TransportError":
    case "TimeoutError":
    case "StreamError":
    case "StreamIncomplete":
      return true
    case "HttpStatusError":
      return error.status >= 500
    default:
      return false
  }
}

/**
 * Whether a failure is the backend saying it is full (503 server busy): the scheduler lowers the backend's limit
 * and puts the call back in its line, without spending a retry; the breaker does not count it.
 */
export const isBackpressure = (error: LlmError): error is ServerBusy => error._tag === "ServerBusy"

/** The Retry-After hint an error carries, in milliseconds, if any. */
export const retryAfterOf = (error: LlmError): number | undefined =>
  "retryAfterMs" in error && typeof error.retryAfterMs === "number" ? error.retryAfterMs : undefined

/** The HTTP status an Ollama-compatible server answers for an error (the gateway uses it). */
export const statusOf = (error: LlmError): number => {
  switch (error._tag) {
    case "RateLimited":
      return 429
    case "CircuitOpen":
    case "QueueFull":
    case "ShuttingDown":
      return 503
    case "BudgetExceeded":
      return 429
    case "ModelNotFound":
      return 404
    case "ServerBusy":
      return 503
    case "InvalidRequest":
    case "HttpStatusError":
      return error.status
    case "TimeoutError":
      return 504
    case "TransportError":
    case "DecodeError":
    case "StreamError":
    case "StreamIncomplete":
      return 502
  }
}
