/**
 * Sluice's logger: JSON lines for machines, readable lines for people, both with the trace of the current span.
 *
 * - Format: `SLUICE_LOG_FORMAT` = json | pretty | auto (default). Auto is JSON when stdout is not a TTY or
 *   `NODE_ENV=production`, pretty otherwise.
 * - Level: `SLUICE_LOG_LEVEL` = trace | debug | info (default) | warn | error | fatal | none.
 * - Every line carries `trace_id` and `span_id` of the span it was logged in, so a log line leads to its trace
 *   (and, through `traceparent`, to the client's trace).
 * - The rule for engine code: prompt and completion text (messages, prompt, content, response, input, images,
 *   system) is never logged at info or above; at debug it may be, for local diagnosis. As a safety net, the
 *   annotations with those names are replaced by "[redacted]" at info and above. Messages themselves are not
 *   inspected: log names, counts and ids, not text.
 */
import {
  Cause,
  Config,
  ConfigError,
  Context,
  Effect,
  Either,
  FiberRefs,
  FiberRef,
  HashMap,
  Layer,
  List,
  Logger,
  LogLevel,
  Option,
  Tracer
} from "effect"

export type Format = "json" | "pretty"

/** Annotation names that may hold prompt or completion text. */
export const textFields: ReadonlyArray<string> = [
  "prompt",
  "messages",
  "content",
  "response",
  "completion",
  "input",
  "images",
  "system"
]

/** The span a line was logged in, if any. */
export const traceOf = (context: FiberRefs.FiberRefs): Option.Option<{ traceId: string; spanId: string }> =>
  Option.map(Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan), (s) => ({
    traceId: s.traceId,
    spanId: s.spanId
  }))

const redact = (annotations: HashMap.HashMap<string, unknown>, level: LogLevel.LogLevel) =>
  LogLevel.greaterThanEqual(level, LogLevel.Info)
    ? HashMap.map(annotations, (value, key) => (textFields.includes(key) ? "[redacted]" : value))
    : annotations

const messageOf = (message: unknown): unknown => {
  const parts = Array.isArray(message) ? message : [message]
  const texts = parts.map((p) => (typeof p === "string" ? p : p instanceof Error ? p.message : p))
  return texts.length === 1 ? texts[0] : texts
}

/** One JSON object per line: time, level, message, trace ids, annotations, log spans, cause. */
export const jsonLogger: Logger.Logger<unknown, string> = Logger.make((options) => {
  const line: Record<string, unknown> = {}
  for (const [key, value] of redact(options.annotations, options.logLevel)) line[key] = value
  line.time = options.date.toISOString()
  line.level = options.logLevel.label.toLowerCase()
  line.message = messageOf(options.message)
  const trace = traceOf(options.context)
  if (Option.isSome(trace)) {
    line.trace_id = trace.value.traceId
    line.span_id = trace.value.spanId
  }
  const now = options.date.getTime()
  if (List.isCons(options.spans)) {
    line.spans = Object.fromEntries(List.toArray(options.spans).map((s) => [s.label, now - s.startTime]))
  }
  if (!Cause.isEmpty(options.cause)) line.cause = Cause.pretty(options.cause, { renderErrorCause: true })
  try {
    return JSON.stringify(line)
  } catch {
    return JSON.stringify({ time: line.time, level: line.level, message: String(options.message) })
  }
})

/** Effect's pretty logger, with the trace ids and the redaction added to the annotations. */
export const prettyLogger: Logger.Logger<unknown, void> = Logger.mapInputOptions(Logger.prettyLogger(), (options) => {
  const trace = traceOf(options.context)
  const annotations = redact(options.annotations, options.logLevel)
  return {
    ...options,
    annotations: Option.isSome(trace)
      ? HashMap.set(HashMap.set(annotations, "trace_id", trace.value.traceId), "span_id", trace.value.spanId)
      : annotations
  }
})

/** `json` when stdout is not a terminal or in production, else `pretty`. */
export const autoFormat = (): Format =>
  process.env.NODE_ENV === "production" || process.stdout.isTTY !== true ? "json" : "pretty"

const levels: Record<string, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

/** A log level by name (case-insensitive; "warn" and "warning" both work). */
export const levelConfig = (name: string): Config.Config<LogLevel.LogLevel> =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const level = levels[text.trim().toLowerCase()]
      return level === undefined
        ? Either.left(
            ConfigError.InvalidData([name], `expected one of ${Object.keys(levels).join(", ")}, got "${text}"`)
          )
        : Either.right(level)
    })
  )

/** Replaces Effect's default logger and sets the minimum level. */
export const make = (options: { readonly format: Format; readonly level: LogLevel.LogLevel }): Layer.Layer<never> =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, options.format === "json" ? Logger.withConsoleLog(jsonLogger) : prettyLogger),
    Logger.minimumLogLevel(options.level)
  )

/** The logger from `SLUICE_LOG_FORMAT`, `SLUICE_LOG_LEVEL` and `NODE_ENV`. */
export const layer: Layer.Layer<never, never> = Layer.unwrapEffect(
  Effect.gen(function* () {
    const level = yield* levelConfig("SLUICE_LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
    const format = yield* Config.literal("json", "pretty", "auto")("SLUICE_LOG_FORMAT").pipe(Config.withDefault("auto"))
    return make({ format: format === "auto" ? autoFormat() : format, level })
  }).pipe(Effect.orDie)
)
