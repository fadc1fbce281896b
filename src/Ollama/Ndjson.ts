/**
 * Ollama's NDJSON streams (reference §8, §9, pitfall 7) as a `Stream` of decoded values, one line at a time.
 *
 * - Bytes are decoded as they arrive (`Stream.decodeText` keeps split UTF-8 sequences, `Stream.splitLines` keeps
 *   lines split across TCP chunks); blank lines are skipped; nothing is buffered beyond the current line.
 * - A `{"error": ...}` line fails with StreamError, carrying how many values came before it.
 * - A line that is not JSON, or does not match the schema, fails with DecodeError.
 * - The terminal value (`done: true`, or `status: "success"` for progress streams) reaches the consumer at once;
 *   the stream then reads the body to its end (Ollama ends it right away) for at most `drainGrace`, so the
 *   keep-alive socket goes back to the pool. Stopping at the terminal value instead aborts the request whenever
 *   the chunked terminator arrives in a later packet: measured here, 50 streams then cost 98 connections, not 1.
 *   A body that ends before the terminal value fails with StreamIncomplete.
 * - Values are decoded with `onExcessProperty: "preserve"`, so fields a newer server adds survive, and each line is
 *   parsed, checked and decoded in one synchronous step, its text noted for its value (Wire.ts: the gateway forwards
 *   it).
 */
import { Deferred, Duration, Effect, Either, ParseResult, Schema, Stream } from "effect"
import { StreamError, StreamIncomplete, type OllamaError } from "../Domain/LlmError.js"
import { type CallContext, decodeError, where } from "./ErrorMapping.js"
import * as Wire from "./Wire.js"

const parseOptions = { onExcessProperty: "preserve" } as const

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const errorLine = (json: unknown): string | undefined => {
  if (typeof json !== "object" || json === null || !("error" in json)) return undefined
  return typeof json.error === "string" ? json.error : JSON.stringify(json.error)
}

/** Whether a chat or generate chunk is the last one. */
export const isDone = (value: { readonly done: boolean }): boolean => value.done

/** Whether a pull, push or create progress line is the last one. */
export const isSuccess = (value: { readonly status: string }): boolean => value.status === "success"

/** How long a stream keeps reading after its terminal value, waiting for the body to end. */
export const drainGrace = Duration.millis(250)

/** Turns a byte stream into the stream of decoded values, ending after the terminal value. */
export const decodeLines =
  <A, I>(ctx: CallContext, schema: Schema.Schema<A, I>, isLast: (value: A) => boolean) =>
  <R>(bytes: Stream.Stream<Uint8Array, OllamaError, R>): Stream.Stream<A, OllamaError, R> =>
    Stream.unwrap(
      Effect.map(Deferred.make<void>(), (terminal) => {
        let chunks = 0
        let finished = false
        const decode = Schema.decodeUnknownEither(schema, parseOptions)
        const decodeLine = (line: string): Effect.Effect<A, OllamaError> => {
          let json: unknown
          try {
            json = JSON.parse(line)
          } catch (error) {
            return Effect.fail(decodeError(ctx, `stream line ${chunks + 1} is not JSON: ${messageOf(error)}`))
          }
          const error = errorLine(json)
          if (error !== undefined) return Effect.fail(new StreamError({ ...where(ctx), body: error, chunks }))
          const decoded = decode(json)
          if (Either.isLeft(decoded))
            return Effect.fail(
              decodeError(
                ctx,
                `a stream line does not match the schema: ${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`
              )
            )
          Wire.note(decoded.right, line)
          return Effect.succeed(decoded.right)
        }
        const count = (value: A) =>
          Effect.suspend(() => {
            chunks += 1
            finished = isLast(value)
            return finished ? Deferred.succeed(terminal, undefined) : Effect.void
          })
        const incomplete = Stream.suspend(() =>
          finished ? Stream.empty : Stream.fail(new StreamIncomplete({ ...where(ctx), chunks }))
        )
        return bytes.pipe(
          Stream.decodeText(),
          Stream.splitLines,
          Stream.filter((line) => !finished && line.trim() !== ""),
          Stream.mapEffect(decodeLine),
          Stream.tap(count),
          Stream.interruptWhen(Effect.zipRight(Deferred.await(terminal), Effect.sleep(drainGrace))),
          Stream.concat(incomplete)
        )
      })
    )
