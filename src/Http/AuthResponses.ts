/**
 * The answers of a refused request, in the caller's API: Ollama's `{"error": msg}`, or on `/v1/*` OpenAI's envelope
 * `{"error": {"message", "type", "param", "code"}}` (what OpenAI's SDKs parse into their typed errors).
 *
 * 401 and 403 carry `WWW-Authenticate` (RFC 6750: `Bearer`, and `error="insufficient_scope"` with the scope for
 * 403); 429 carries `Retry-After` in whole seconds (rounded up, at least 1) and the rate-limit headers.
 */
import { HttpServerResponse } from "@effect/platform"
import type { Scope } from "../Store/KeysRepo.js"
import type { Flavor } from "./AuthPolicy.js"
import * as Respond from "./Respond.js"

interface OpenAiError {
  readonly type: string
  readonly code: string | null
}

const answer = (
  flavor: Flavor,
  status: number,
  message: string,
  openai: OpenAiError,
  headers: Readonly<Record<string, string>>
): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.setHeaders(
    flavor === "openai"
      ? Respond.json({ error: { message, type: openai.type, param: null, code: openai.code } }, status)
      : Respond.error(status, message),
    headers
  )

/** 401: no key, or one that is not valid (unknown, wrong secret, revoked: the caller is not told which). */
export const unauthorized = (flavor: Flavor, message: "missing API key" | "invalid API key") =>
  answer(
    flavor,
    401,
    message,
    { type: "invalid_request_error", code: "invalid_api_key" },
    { "www-authenticate": 'Bearer realm="sluice"' }
  )

/** 403: a valid key without the scope the route needs. */
export const forbidden = (flavor: Flavor, scope: Scope) =>
  answer(
    flavor,
    403,
    `this API key does not have the "${scope}" scope`,
    { type: "invalid_request_error", code: "insufficient_scope" },
    { "www-authenticate": `Bearer realm="sluice", error="insufficient_scope", scope="${scope}"` }
  )

/** Whole seconds, rounded up, at least 1. */
export const seconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000))

/** 429: a key's limit refused the request; retry after `retryAfterMs`. */
export const limited = (
  flavor: Flavor,
  message: string,
  limit: "requests" | "tokens",
  retryAfterMs: number,
  headers: Readonly<Record<string, string>>
) =>
  answer(
    flavor,
    429,
    message,
    { type: limit, code: "rate_limit_exceeded" },
    { ...headers, "retry-after": String(seconds(retryAfterMs)) }
  )

/** 503: the key store did not answer (or the key's limits have no room); authentication fails closed. */
export const unavailable = (flavor: Flavor, reason = "the key store did not answer") =>
  answer(
    flavor,
    503,
    `authentication is unavailable: ${reason}`,
    { type: "server_error", code: null },
    { "retry-after": "1" }
  )
