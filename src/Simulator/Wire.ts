/**
 * How the simulator speaks HTTP the way Ollama does: JSON with `application/json; charset=utf-8`, errors as
 * `{"error": msg}`, NDJSON streams as `application/x-ndjson`, the exact 503 body, and request-body reading
 * with Ollama's 400 messages. Route failures are an `ApiError` (status + message) turned into a response
 * in one place (`respond`), which is also where 503s are counted.
 */
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Data, Effect, ParseResult, Schema } from "effect"
import { serverBusyMessage } from "../Domain/Common.js"
import type { Stats } from "./Stats.js"

export const jsonContentType = "application/json; charset=utf-8"
export const ndjsonContentType = "application/x-ndjson"
export const encoder = new TextEncoder()

/** A failure answered with Ollama's `{"error": message}` body and `status`. */
export class ApiError extends Data.TaggedError("ApiError")<{ readonly status: number; readonly error: string }> {}

/** Ends the connection with no response at all (the `reset` fault). */
export class ResetConnection extends Data.TaggedError("ResetConnection")<{}> {}

export const fail = (status: number, error: string): Effect.Effect<never, ApiError> =>
  Effect.fail(new ApiError({ status, error }))

export const busy = (): ApiError => new ApiError({ status: 503, error: serverBusyMessage })

export const json = (body: unknown, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: jsonContentType })

/** A pre-serialised JSON body. */
export const jsonText = (body: string, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(body, { status, contentType: jsonContentType })

export const errorResponse = (status: number, error: string): HttpServerResponse.HttpServerResponse =>
  json({ error }, status)

/** Turns an `ApiError` into its response, counting 503s. */
export const respond = <R>(
  stats: Stats,
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.catchTag(handler, "ApiError", (e) =>
    Effect.sync(() => {
      if (e.status === 503) stats.rejected503++
      return errorResponse(e.status, e.error)
    })
  )

/** RFC3339 UTC timestamp, as `created_at` carries it. */
export const timestamp = (ms: number = Date.now()): string => new Date(ms).toISOString()

/** The request body as JSON: empty -> 400 `missing request body`, invalid -> 400 with the parse error. */
export const readJson: Effect.Effect<unknown, ApiError, HttpServerRequest.HttpServerRequest> = Effect.flatMap(
  HttpServerRequest.HttpServerRequest,
  (request) =>
    Effect.flatMap(
      Effect.mapError(request.text, () => new ApiError({ status: 400, error: "failed to read request body" })),
      (text) => {
        if (text.trim() === "") return fail(400, "missing request body")
        try {
          return Effect.succeed(JSON.parse(text) as unknown)
        } catch (e) {
          return fail(400, `invalid JSON: ${(e as Error).message}`)
        }
      }
    )
)

/** A decoder for a Domain schema (unknown fields tolerated); a mismatch is a 400. Build once, use per request. */
export const decoder = <A, I>(schema: Schema.Schema<A, I>): ((body: unknown) => Effect.Effect<A, ApiError>) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (body) => {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return fail(400, "json: cannot unmarshal non-object into request")
    }
    const result = decode(body)
    if (result._tag === "Right") return Effect.succeed(result.right)
    const detail = ParseResult.ArrayFormatter.formatErrorSync(result.left)[0]
    const where = detail === undefined ? "" : ` at ${detail.path.join(".")}: ${detail.message}`
    return fail(400, `invalid request${where}`)
  }
}

/** Reads and decodes the body with a Domain schema. */
export const readBody = <A, I>(
  schema: Schema.Schema<A, I>
): Effect.Effect<A, ApiError, HttpServerRequest.HttpServerRequest> => Effect.flatMap(readJson, decoder(schema))
