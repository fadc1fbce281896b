/**
 * The command timeout of Shared/Redis.ts under a busy event loop: a reply that arrived while the process was busy
 * past the timeout is taken (a limit decision Redis made must not be made again locally), and a Redis that does
 * not answer still times out.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as Redis from "../../src/Shared/Redis.js"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"

/** Keeps the event loop busy for `ms`, as a burst of requests does. */
const spin = (ms: number) => {
  const end = Date.now() + ms
  while (Date.now() < end) {
    // busy
  }
}

describe.skipIf(redisBinary === undefined)(
  `Shared/Redis timeout (${redisBinary === undefined ? skipReason : "redis-server"})`,
  () => {
    it.scopedLive("a reply that came while the process was busy past the timeout is taken", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const connection = yield* Redis.connect({ url: server.url, timeout: "100 millis" })
        assert.isTrue(yield* Redis.ready(connection, "5 seconds"))
        // the command is sent, then the process is busy for 300 ms before it reads any socket again
        const pong = yield* connection.run("ping", (c) => {
          const sent = c.ping()
          queueMicrotask(() => spin(300))
          return sent
        })
        assert.strictEqual(pong, "PONG")
      })
    )

    it.scopedLive("a Redis that does not answer still times out", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const connection = yield* Redis.connect({ url: server.url, timeout: "100 millis" })
        const other = yield* Redis.connect({ url: server.url })
        assert.isTrue(yield* Redis.ready(connection, "5 seconds"))
        assert.isTrue(yield* Redis.ready(other, "5 seconds"))
        yield* other.run("ping", (c) => c.call("CLIENT", "PAUSE", "1000", "ALL"))
        const paused = yield* Effect.either(connection.run("ping", (c) => c.ping()))
        assert.isTrue(Either.isLeft(paused) && paused.left.message.includes("timed out"))
      })
    )
  }
)
