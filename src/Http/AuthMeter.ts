/**
 * Model tokens at the gateway: what an answer reports it used (`tokensIn`), charged to its key's tokens-per-minute
 * limit when the answer has been produced (`meter`), a stream once it ends.
 */
import { HttpBody, HttpServerResponse } from "@effect/platform"
import { Effect, Stream } from "effect"

const lastCount = (text: string, field: string): number | undefined => {
  let found: number | undefined
  for (const m of text.matchAll(new RegExp(`"${field}":\\s*(\\d+)`, "g"))) found = Number(m[1])
  return found
}

/**
 * The model tokens an answer (or a piece of a stream) reports: Ollama's `prompt_eval_count + eval_count`, else
 * OpenAI's `usage.total_tokens`; the last occurrence wins. A key inside a JSON string is escaped (`\"`) and never
 * matches.
 */
export const tokensIn = (text: string): number | undefined => {
  const prompt = lastCount(text, "prompt_eval_count")
  const completion = lastCount(text, "eval_count")
  if (prompt !== undefined || completion !== undefined) return (prompt ?? 0) + (completion ?? 0)
  return lastCount(text, "total_tokens")
}

const decoder = new TextDecoder()

/**
 * The answer with its tokens charged: a unary body at once, a stream when it ends (from the last piece that
 * reported counts).
 */
export const meter = (
  response: HttpServerResponse.HttpServerResponse,
  charge: (tokens: number) => Effect.Effect<void>
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  const body = response.body
  if (body._tag === "Uint8Array") return Effect.as(charge(tokensIn(decoder.decode(body.body)) ?? 0), response)
  if (body._tag !== "Stream") return Effect.succeed(response)
  return Effect.sync(() => {
    let tokens = 0
    const stream = body.stream.pipe(
      Stream.tap((bytes) =>
        Effect.sync(() => {
          tokens = tokensIn(decoder.decode(bytes)) ?? tokens
        })
      ),
      Stream.ensuring(Effect.suspend(() => charge(tokens)))
    )
    return HttpServerResponse.setBody(response, HttpBody.stream(stream, body.contentType, body.contentLength))
  })
}
