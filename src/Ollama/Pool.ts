/**
 * The HTTP pool in front of one Ollama server: a scoped, bounded, keep-alive undici `Agent`, destroyed when its
 * scope closes, exposed as `NodeHttpClient.Dispatcher` and as an `HttpClient` on top of it.
 *
 * Choices:
 * - `connections` caps the sockets per origin (undici's default is unlimited: reference pitfall 9); extra
 *   requests wait inside the pool.
 * - Timeouts are explicit, so a long non-streamed generation does not die at undici's 300 s default (pitfall 1).
 *   @effect/platform's undici client sends `headersTimeout: 1h, bodyTimeout: 0` with every request, which would
 *   override the Agent's own values, so an interceptor re-applies ours on each dispatch.
 * - A duration of 0 (or infinity) means "no timeout" for connect, headers and body.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Undici from "@effect/platform-node/Undici"
import type { HttpClient } from "@effect/platform"
import { Duration, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { isIP } from "node:net"

/** Pool settings; every field has a default in `defaults`. */
export interface Options {
  /** Sockets per origin. */
  readonly connections?: number | undefined
  /** TCP (and TLS) connect deadline. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Deadline from sending the request to the response headers (Ollama sends them with the first token). */
  readonly headersTimeout?: Duration.DurationInput | undefined
  /** Longest silence between two body chunks. */
  readonly bodyTimeout?: Duration.DurationInput | undefined
  /** How long an idle socket stays in the pool. */
  readonly keepAlive?: Duration.DurationInput | undefined
}

/** The defaults, in one place (the env config uses them too). */
export const defaults = {
  connections: 32,
  connectTimeout: "10 seconds",
  headersTimeout: "15 minutes",
  bodyTimeout: "5 minutes",
  keepAlive: "10 seconds"
} as const

/** The settings in milliseconds, as undici takes them (0 = none). */
export interface Resolved {
  readonly connections: number
  readonly connectTimeoutMs: number
  readonly headersTimeoutMs: number
  readonly bodyTimeoutMs: number
  readonly keepAliveMs: number
}

const millis = (input: Duration.DurationInput): number => {
  const ms = Duration.toMillis(Duration.decode(input))
  return Number.isFinite(ms) && ms > 0 ? Math.ceil(ms) : 0
}

/** Fills in the defaults and converts durations to milliseconds. */
export const resolve = (options: Options): Resolved => ({
  connections: Math.max(1, Math.floor(options.connections ?? defaults.connections)),
  connectTimeoutMs: millis(options.connectTimeout ?? defaults.connectTimeout),
  headersTimeoutMs: millis(options.headersTimeout ?? defaults.headersTimeout),
  bodyTimeoutMs: millis(options.bodyTimeout ?? defaults.bodyTimeout),
  keepAliveMs: Math.max(1, millis(options.keepAlive ?? defaults.keepAlive))
})

/**
 * DNS answers are cached for 5 minutes (undici's dns interceptor; IP literals skip it), so a busy gateway does
 * not resolve the backend's name for every new socket, and a moved backend is picked up within minutes.
 */
const dnsTtlMs = 5 * 60 * 1000

const withTimeouts =
  (headersTimeout: number, bodyTimeout: number): Undici.Dispatcher.DispatcherComposeInterceptor =>
  (dispatch) =>
  (options, handler) =>
    dispatch({ ...options, headersTimeout, bodyTimeout }, handler)

/**
 * Acquires the Agent (released with `destroy`, which closes every socket) and returns the dispatcher. `host`, when
 * given, is the one host the pool serves: an IP literal needs no DNS cache, so the interceptor (which parses the
 * origin on every request only to find that out) is left out.
 */
export const makeDispatcher = (
  options: Options,
  host?: string
): Effect.Effect<Undici.Dispatcher, never, Scope.Scope> => {
  const settings = resolve(options)
  return Effect.acquireRelease(
    Effect.sync(
      () =>
        new Undici.Agent({
          connections: settings.connections,
          pipelining: 1,
          keepAliveTimeout: settings.keepAliveMs,
          keepAliveMaxTimeout: settings.keepAliveMs,
          connect: { timeout: settings.connectTimeoutMs },
          headersTimeout: settings.headersTimeoutMs,
          bodyTimeout: settings.bodyTimeoutMs
        })
    ),
    (agent) => Effect.ignore(Effect.tryPromise(() => agent.destroy()))
  ).pipe(
    Effect.map((agent) => {
      const timeouts = withTimeouts(settings.headersTimeoutMs, settings.bodyTimeoutMs)
      return host !== undefined && isIP(host) !== 0
        ? agent.compose(timeouts)
        : agent.compose(timeouts, Undici.interceptors.dns({ maxTTL: dnsTtlMs }))
    })
  )
}

/** The pool as `NodeHttpClient.Dispatcher`. */
export const layer = (options: Options): Layer.Layer<NodeHttpClient.Dispatcher> =>
  Layer.scoped(NodeHttpClient.Dispatcher, makeDispatcher(options))

/** An `HttpClient` that sends through its own pool. */
export const layerHttpClient = (options: Options): Layer.Layer<HttpClient.HttpClient> =>
  NodeHttpClient.layerUndiciWithoutDispatcher.pipe(Layer.provide(layer(options)))
