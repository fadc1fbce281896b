/**
 * Reads and validates a JSON request body with a wire Schema before anything reaches the engine.
 * Unknown fields are preserved (not stripped), so options a newer client sends still reach Ollama.
 * Every refusal is a typed `BadRequest` that the routes answer as 400 with Ollama's error body.
 */
import { HttpServerRequest } from "@effect/platform"
import { Data, Effect, ParseResult, Schema } from "effect"

export class BadRequest extends Data.TaggedError("BadRequest")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

const parseJson = (text: string): Effect.Effect<unknown, BadRequest> =>
  text.trim().length === 0
    ? Effect.fail(new BadRequest({ reason: "missing request body" }))
    : Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (e) => new BadRequest({ reason: `invalid JSON: ${e instanceof Error ? e.message : String(e)}` })
      })

/** Decodes the body of the current request with `schema`. */
export const decodeBody = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknown(schema, { onExcessProperty: "preserve", errors: "first" })
  return HttpServerRequest.HttpServerRequest.pipe(
    Effect.flatMap((request) => request.text),
    Effect.mapError(() => new BadRequest({ reason: "cannot read the request body" })),
    Effect.flatMap(parseJson),
    Effect.flatMap((value) =>
      decode(value).pipe(
        Effect.mapError((e) => new BadRequest({ reason: ParseResult.TreeFormatter.formatErrorSync(e) }))
      )
    )
  )
}
