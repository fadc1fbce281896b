/**
 * Wire types shared by Ollama's endpoints: options, keep_alive, format, think, and the final chunk's metrics.
 *
 * Decoding is tolerant by design: unknown fields a newer server (or client) adds are ignored by the
 * structs, and `options` keeps unknown keys so they reach Ollama untouched.
 */
import { Schema } from "effect"

/** An optional field that is absent rather than `undefined` (exactOptionalPropertyTypes). */
export const optional = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })

/** An optional field that older servers sometimes send as `null`; `null` decodes to absent. */
export const optionalNullable = <S extends Schema.Schema.Any>(schema: S) =>
  Schema.optionalWith(schema, { exact: true, nullable: true })

export const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type JsonObject = typeof JsonObject.Type

/** Modelfile parameters; request > Modelfile > default. Unknown keys are kept (the server ignores them). */
export const Options = Schema.Struct(
  {
    num_keep: optional(Schema.Number),
    seed: optional(Schema.Number),
    num_predict: optional(Schema.Number),
    top_k: optional(Schema.Number),
    top_p: optional(Schema.Number),
    min_p: optional(Schema.Number),
    typical_p: optional(Schema.Number),
    repeat_last_n: optional(Schema.Number),
    temperature: optional(Schema.Number),
    repeat_penalty: optional(Schema.Number),
    presence_penalty: optional(Schema.Number),
    frequency_penalty: optional(Schema.Number),
    stop: optional(Schema.Array(Schema.String)),
    num_ctx: optional(Schema.Number),
    num_batch: optional(Schema.Number),
    num_gpu: optional(Schema.Number),
    main_gpu: optional(Schema.Number),
    use_mmap: optional(Schema.Boolean),
    num_thread: optional(Schema.Number)
  },
  JsonObject
)
export type Options = typeof Options.Type

/** A Go duration string ("5m", "-1m", "300ms") or a number of seconds; 0 unloads, negative keeps forever. */
export const KeepAlive = Schema.Union(Schema.String, Schema.Number)
export type KeepAlive = typeof KeepAlive.Type

/** `"json"` or a JSON Schema object; `""` or `null` mean none. */
export const Format = Schema.Union(Schema.String, JsonObject)
export type Format = typeof Format.Type

/** `true`/`false` or a level: "low", "medium", "high", "max" (kept as a string so newer levels decode). */
export const Think = Schema.Union(Schema.Boolean, Schema.String)
export type Think = typeof Think.Type

/** Why a generation ended: "stop", "length", "load", "unload" (others may appear on newer servers). */
export const DoneReason = Schema.String

/**
 * The metrics on a final (`done: true`) object. Every duration is integer nanoseconds (Go time.Duration);
 * zero values are omitted by the server, so each is optional.
 */
export const Metrics = {
  total_duration: optional(Schema.Number),
  load_duration: optional(Schema.Number),
  prompt_eval_count: optional(Schema.Number),
  prompt_eval_duration: optional(Schema.Number),
  eval_count: optional(Schema.Number),
  eval_duration: optional(Schema.Number)
}

/** Token log-probabilities (since 0.12.11); kept opaque. */
export const Logprobs = Schema.Array(Schema.Unknown)

/** Ollama's error body: `{"error": "<message>"}`. */
export const ErrorBody = Schema.Struct({ error: Schema.String })
export type ErrorBody = typeof ErrorBody.Type

/** The exact body Ollama sends with 503 when its scheduling queue is full (two spaces after the period). */
export const serverBusyMessage = "server busy, please try again.  maximum pending requests exceeded"
