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
  phase: Schema.Literal("connect", "headers", "body", "call"),
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

/** The HTTP status an Ollama-compatible server answers for an error (the gateway uses it). */
export const statusOf = (error: OllamaError): number => {
  switch (error._tag) {
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
