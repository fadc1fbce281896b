/**
 * Hostile-input protection for the gateway, shared by both route families (Ollama's `/api/*` and OpenAI's `/v1/*`):
 *
 * - the request body is read as raw bytes with a cap (`SLUICE_MAX_BODY_BYTES`, default 8 MiB): a declared
 *   `content-length` over the cap is refused before a byte is read; a chunked body is refused the moment it passes
 *   the cap, and the rest is drained (not reset), so the client still reads its 413;
 * - the bytes must be valid UTF-8 (a fatal decoder, no silent U+FFFD);
 * - JSON nesting is capped (`SLUICE_MAX_JSON_DEPTH`, default 64) by a scan that runs before `JSON.parse`, so a
 *   body of a million `[` costs one linear pass and no recursion;
 * - the Node server drops slow clients (`createServer`): headers must arrive within 10 s, the whole request (not the
 *   response) within 60 s, and an idle keep-alive connection is closed after 5 s.
 *
 * Every refusal is a `BadRequest` carrying its status (400 or 413); the routes answer it in their family's error
 * shape. A refusal is the client's mistake: it is logged at debug level, never as an error.
 */
import { HttpIncomingMessage, HttpServerRequest } from "@effect/platform"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Config, Context, Data, Effect, Layer, Option } from "effect"
import { createServer as createNodeServer, type IncomingMessage, type Server } from "node:http"
import { CountedResponse } from "./OpenResponses.js"

/**
 * A refused request: a client mistake, answered with `status` (400 unless said otherwise) and `reason`. `param` and
 * `code` fill the fields of OpenAI's error envelope when a `/v1` route knows them (see BodyErrors.ts).
 */
export class BadRequest extends Data.TaggedError("BadRequest")<{
  readonly reason: string
  readonly status: number
  readonly param?: string
  readonly code?: string
}> {
  override get message() {
    return this.reason
  }
}

const refuse = (reason: string, status = 400) =>
  Effect.zipRight(
    Effect.logDebug(`request refused (${status}): ${reason}`),
    Effect.fail(new BadRequest({ reason, status }))
  )

export interface Limits {
  /** The largest request body accepted, in bytes (default 8 MiB). */
  readonly maxBodyBytes: number
  /** The deepest JSON nesting accepted (default 64). */
  readonly maxJsonDepth: number
}

export const defaults: Limits = { maxBodyBytes: 8 * 1024 * 1024, maxJsonDepth: 64 }

/** The limits in force; the defaults unless a layer provides others. */
export class GuardLimits extends Context.Reference<GuardLimits>()("sluice/GuardLimits", {
  defaultValue: (): Limits => defaults
}) {}

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a positive integer`, validation: (n) => n > 0 })
  )

/** `SLUICE_MAX_BODY_BYTES` and `SLUICE_MAX_JSON_DEPTH`. */
export const config: Config.Config<Limits> = Config.nested(
  Config.all({
    maxBodyBytes: positive("MAX_BODY_BYTES", defaults.maxBodyBytes),
    maxJsonDepth: positive("MAX_JSON_DEPTH", defaults.maxJsonDepth)
  }),
  "SLUICE"
)

export const layer = (limits: Limits) => Layer.succeed(GuardLimits, limits)
export const layerConfig = Layer.effect(GuardLimits, config)

const tooLarge = (max: number) => `request body too large: the limit is ${max} bytes`

/** Reads a Node request's body up to `max` bytes; past it, the rest is drained and discarded, never reset. */
const readNode = (source: IncomingMessage, max: number) =>
  Effect.async<Uint8Array, BadRequest>((resume) => {
    const chunks: Array<Buffer> = []
    let bytes = 0
    const cleanup = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
    }
    const finish = (result: Effect.Effect<Uint8Array, BadRequest>) => {
      cleanup()
      resume(result)
    }
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes <= max) return void chunks.push(chunk)
      finish(refuse(tooLarge(max), 413))
      source.resume()
    }
    const onEnd = () => finish(Effect.succeed(Buffer.concat(chunks)))
    const onError = () => finish(refuse("cannot read the request body"))
    if (source.readableEnded) return void resume(refuse("the request body was already read"))
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onError)
    return Effect.sync(cleanup)
  })

/**
 * The raw body bytes, at most `maxBodyBytes` of them. Read from the request's fiber directly (one step before the
 * read itself): it runs for every request with a body.
 */
export const readBytes: Effect.Effect<Uint8Array, BadRequest, HttpServerRequest.HttpServerRequest> =
  Effect.withFiberRuntime((fiber) => {
    const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
    const { maxBodyBytes } = Context.get(fiber.currentContext, GuardLimits)
    const declared = Number(request.headers["content-length"])
    if (Number.isFinite(declared) && declared > maxBodyBytes) return refuse(tooLarge(maxBodyBytes), 413)
    const source = NodeHttpServerRequest.toIncomingMessage(request) as IncomingMessage | undefined
    if (source !== undefined && typeof source.on === "function") return readNode(source, maxBodyBytes)
    // not a Node request (tests with other servers): the platform's own capped read
    return request.arrayBuffer.pipe(
      Effect.map((buffer) => new Uint8Array(buffer)),
      HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes)),
      Effect.catchAll(() => refuse(tooLarge(maxBodyBytes), 413))
    )
  })

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** Whether `text` nests arrays and objects deeper than `max` (strings are skipped, escapes honoured). */
export const nestsDeeperThan = (text: string, max: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92) i++
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 123 || c === 91) {
      if (++depth > max) return true
    } else if (c === 125 || c === 93) depth--
  }
  return false
}

/** The checks of `readJson` on the bytes read, in one synchronous step. */
const parseJson = (bytes: Uint8Array, maxJsonDepth: number): Effect.Effect<unknown, BadRequest> => {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return refuse("invalid UTF-8 in the request body")
  }
  if (text.trim().length === 0) return refuse("missing request body")
  if (nestsDeeperThan(text, maxJsonDepth)) return refuse(`JSON nested deeper than ${maxJsonDepth} levels`)
  try {
    return Effect.succeed(JSON.parse(text) as unknown)
  } catch (e) {
    return refuse(`invalid JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/** The request body as JSON: capped, valid UTF-8, not too deep, parsed. An empty body is `missing request body`. */
export const readJson: Effect.Effect<unknown, BadRequest, HttpServerRequest.HttpServerRequest> = Effect.flatMap(
  readBytes,
  (bytes) =>
    Effect.withFiberRuntime((fiber) => parseJson(bytes, Context.get(fiber.currentContext, GuardLimits).maxJsonDepth))
)

export interface Timeouts {
  /** How long a client may take to send its request headers (ms). */
  readonly headersTimeout: number
  /** How long a client may take to send its whole request, body included (ms); the response is not limited. */
  readonly requestTimeout: number
  /** How long an idle keep-alive connection stays open (ms). */
  readonly keepAliveTimeout: number
}

export const timeouts: Timeouts = { headersTimeout: 10_000, requestTimeout: 60_000, keepAliveTimeout: 5_000 }

/** Node's http server with the slow-client timeouts set (Node answers 408 and closes when one passes). */
export const createServer = (options: Timeouts = timeouts): Server => {
  const server = createNodeServer({
    headersTimeout: options.headersTimeout,
    requestTimeout: options.requestTimeout,
    keepAliveTimeout: options.keepAliveTimeout,
    // counts unfinished responses, so the drain can wait for their last bytes (OpenResponses.ts)
    ServerResponse: CountedResponse,
    // how often Node checks the headers and request timeouts (default 30 s: too coarse for a 10 s limit)
    connectionsCheckingInterval: Math.min(1_000, options.headersTimeout)
  })
  return server
}
