/**
 * The shared Redis of a scale-out deployment (docs/scale-out.md): one connection per process, chosen by
 * `SLUICE_REDIS_URL`, read by the key limits, the engine's rate limits, the response cache and the breakers.
 * Without the setting, `Redis` is `None` and every one of those works per process as before.
 *
 * Choices:
 * - The client is ioredis: maintained, the client @effect/experimental's Redis stores are written for, with Lua
 *   scripts as commands (`defineCommand`, sent by SHA), auto-reconnect and pipelining.
 * - Commands fail fast while Redis is away (`enableOfflineQueue: false`, one attempt, a command timeout), so a
 *   caller never waits on a dead Redis: it takes the documented fallback (`SLUICE_REDIS_FALLBACK`, `local` by
 *   default: per-process decisions; `closed`: refuse what needs a shared decision with 503). ioredis keeps
 *   reconnecting in the background, and `up` turns true again by itself.
 * - `Redis` is a `Context.Reference` defaulting to `None`, so a layer that may use Redis reads it without a new
 *   requirement, and an embedding app that never configures Redis provides nothing.
 */
import { Config, Context, Data, Duration, Effect, Layer, Metric, Option, Scope } from "effect"
import { Redis as IoRedis } from "ioredis"
import * as Metrics from "../Observability/Metrics.js"

/** What a Redis use does when Redis does not answer. */
export type Fallback = "local" | "closed"

/** Where Redis is used, for metrics and errors. */
export type Use = "limits" | "cache" | "breaker" | "ping"

/** A Redis command that failed or timed out. */
export class RedisError extends Data.TaggedError("RedisError")<{
  readonly use: Use
  readonly message: string
}> {}

export interface Connection {
  /** The URL without its password, for logs and health. */
  readonly url: string
  readonly client: IoRedis
  /** What callers do while Redis does not answer. */
  readonly fallback: Fallback
  /** Keys are prefixed with this (`sluice:` by default), so one Redis can serve several deployments. */
  readonly prefix: string
  /** True while the connection is ready. */
  readonly up: Effect.Effect<boolean>
  /** Runs a command; a failure or a timeout is a `RedisError`, counted in `sluice_redis_errors_total`. */
  readonly run: <A>(use: Use, command: (client: IoRedis) => Promise<A>) => Effect.Effect<A, RedisError>
  /**
   * Calls `handler` with every message published on `channel` (the full key, prefix included) until the returned
   * function is called. One subscriber connection per process, made on first use, closed with the connection;
   * it subscribes again to every channel each time it is (re)connected. Pub/sub is at most once: a message
   * published while it is away is lost, so users poll as well, or catch up in `subscribed`, called each time the
   * subscription is in place (first, and after every reconnection).
   */
  readonly subscribe: (
    channel: string,
    handler: (message: string) => void,
    subscribed?: () => void
  ) => Effect.Effect<() => void>
}

/** The shared Redis, when one is configured. */
export class Redis extends Context.Reference<Redis>()("sluice/Redis", {
  defaultValue: (): Option.Option<Connection> => Option.none()
}) {}

/** `SLUICE_REDIS_URL`, `SLUICE_REDIS_FALLBACK` (local), `SLUICE_REDIS_TIMEOUT` (250 ms), `SLUICE_REDIS_PREFIX`. */
export const settings = Config.all({
  url: Config.option(Config.string("SLUICE_REDIS_URL")),
  fallback: Config.literal("local", "closed")("SLUICE_REDIS_FALLBACK").pipe(Config.withDefault<Fallback>("local")),
  timeout: Config.duration("SLUICE_REDIS_TIMEOUT").pipe(Config.withDefault(Duration.millis(250))),
  prefix: Config.string("SLUICE_REDIS_PREFIX").pipe(Config.withDefault("sluice:"))
})

/** The URL with any password replaced by `***`. */
export const redact = (url: string): string => url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * `promise`, or a timeout once `ms` have passed and the event loop has read its sockets since (the check phase
 * follows the poll phase): a reply that came while the process was busy past `ms` (a burst of requests) is taken,
 * not mistaken for a Redis that does not answer. A plain timer (ioredis's `commandTimeout`) fires before that read,
 * and a limit decision Redis made would then be made again locally.
 */
const within = <A>(promise: Promise<A>, ms: number): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => setImmediate(() => reject(new Error(`Command timed out after ${ms} ms`))), ms)
    promise.then(
      (a) => (clearTimeout(timer), resolve(a)),
      (e) => (clearTimeout(timer), reject(e))
    )
  })

type Handler = { readonly message: (message: string) => void; readonly subscribed?: (() => void) | undefined }

/** `Connection.subscribe` over a duplicate of `client` made on first use and disconnected when the scope closes. */
const subscriber = (client: IoRedis) =>
  Effect.map(Effect.scope, (scope) => {
    const handlers = new Map<string, Set<Handler>>()
    let connection: IoRedis | undefined
    const subscribeTo = (c: IoRedis, channel: string) =>
      c.subscribe(channel).then(
        () => handlers.get(channel)?.forEach((h) => h.subscribed?.()),
        () => undefined
      )
    const subscribeAll = (c: IoRedis) => {
      if (c.status === "ready") for (const channel of handlers.keys()) subscribeTo(c, channel)
    }
    const open = (): IoRedis => {
      if (connection !== undefined) return connection
      const c = client.duplicate({ autoResubscribe: false })
      c.on("error", () => undefined)
      c.on("ready", () => subscribeAll(c))
      c.on("message", (channel: string, message: string) => handlers.get(channel)?.forEach((h) => h.message(message)))
      connection = c
      Effect.runSync(
        Scope.addFinalizer(
          scope,
          Effect.sync(() => c.disconnect())
        )
      )
      return c
    }
    return (channel: string, message: (message: string) => void, subscribed?: () => void) =>
      Effect.sync(() => {
        const c = open()
        const set = handlers.get(channel) ?? new Set()
        if (set.size === 0) handlers.set(channel, set)
        const handler: Handler = { message, subscribed }
        set.add(handler)
        if (c.status === "ready") {
          if (set.size === 1) subscribeTo(c, channel)
          else if (subscribed !== undefined) subscribed()
        }
        return () => {
          set.delete(handler)
          if (set.size > 0 || handlers.get(channel) !== set) return
          handlers.delete(channel)
          if (c.status === "ready") c.unsubscribe(channel).catch(() => undefined)
        }
      })
  })

/** Opens a connection for the scope; it is closed (QUIT) when the scope closes. */
export const connect = (options: {
  readonly url: string
  readonly fallback?: Fallback
  readonly timeout?: Duration.DurationInput
  readonly prefix?: string
}): Effect.Effect<Connection, never, import("effect").Scope.Scope> =>
  Effect.gen(function* () {
    const timeout = Duration.toMillis(options.timeout ?? Duration.millis(250))
    const client = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new IoRedis(options.url, {
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            // a backstop that drops a command from ioredis's queue; `run` applies `timeout` itself (`within`)
            commandTimeout: Math.max(timeout * 10, 5_000),
            connectTimeout: Math.max(1000, timeout * 4),
            retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 2000),
            lazyConnect: false
          })
      ),
      (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
    )
    // ioredis reports connection errors as events; without a listener Node prints them as unhandled
    client.on("error", () => undefined)
    const store = Metric.tagged(Metrics.sharedStoreUp, "store", "redis")
    const up = Effect.sync(() => client.status === "ready").pipe(
      Effect.tap((ready) => Metric.set(store, ready ? 1 : 0))
    )
    const run = <A>(use: Use, command: (client: IoRedis) => Promise<A>) =>
      Effect.tryPromise({
        try: () => within(command(client), timeout),
        catch: (e) => new RedisError({ use, message: message(e) })
      }).pipe(Effect.tapError(() => Metric.increment(Metric.tagged(Metrics.redisErrors, "use", use))))
    const subscribe = yield* subscriber(client)
    return {
      url: redact(options.url),
      client,
      fallback: options.fallback ?? "local",
      prefix: options.prefix ?? "sluice:",
      up,
      run,
      subscribe
    } satisfies Connection
  })

/** Waits until the connection is ready, up to `within`; false when it is not. */
export const ready = (connection: Connection, within: Duration.DurationInput) =>
  Effect.promise(
    () =>
      new Promise<boolean>((resolve) => {
        if (connection.client.status === "ready") return resolve(true)
        const timer = setTimeout(
          () => (connection.client.off("ready", onReady), resolve(false)),
          Duration.toMillis(within)
        )
        const onReady = () => (clearTimeout(timer), resolve(true))
        connection.client.once("ready", onReady)
      })
  )

/** The server's version (`INFO server`), e.g. "7.0.15". */
export const version = (connection: Connection) =>
  Effect.map(
    connection.run("ping", (c) => c.info("server")),
    (info) => /redis_version:([\d.]+)/.exec(info)?.[1] ?? "unknown"
  )

/**
 * Provides `Redis` from the settings: `Some` connection when `SLUICE_REDIS_URL` is set, else `None`. Building does
 * not wait for Redis: startup validation (`Lifecycle/ChecksShared.ts`) says whether it answers.
 */
export const layer: Layer.Layer<never, import("effect").ConfigError.ConfigError> = Layer.scopedContext(
  Effect.gen(function* () {
    const s = yield* settings
    if (Option.isNone(s.url)) return Context.empty()
    const connection = yield* connect({ url: s.url.value, fallback: s.fallback, timeout: s.timeout, prefix: s.prefix })
    return Context.make(Redis, Option.some(connection))
  })
)

/** Provides `Redis` with a given connection (tests, embedding apps). */
export const layerConnection = (options: Parameters<typeof connect>[0]) =>
  Layer.scopedContext(Effect.map(connect(options), (c) => Context.make(Redis, Option.some(c))))
