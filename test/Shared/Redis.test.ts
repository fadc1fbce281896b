import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Schedule } from "effect"
import * as Redis from "../../src/Shared/Redis.js"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"

describe.skipIf(redisBinary === undefined)(
  `Shared/Redis (${redisBinary === undefined ? skipReason : "redis-server"})`,
  () => {
    it.scopedLive("runs commands, fails fast while Redis is away, and comes back by itself", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const connection = yield* Redis.connect({ url: server.url })
        assert.isTrue(yield* Redis.ready(connection, "5 seconds"))
        assert.match(yield* Redis.version(connection), /^\d+\.\d+/)
        assert.strictEqual(yield* connection.run("cache", (c) => c.set("k", "v")), "OK")
        yield* server.stop
        const away = yield* Effect.either(connection.run("cache", (c) => c.get("k")))
        assert.isTrue(Either.isLeft(away))
        // the client notices the closed socket on its own event: `up` turns false soon after, not necessarily at once
        yield* connection.up.pipe(
          Effect.repeat({ until: (up) => !up, schedule: Schedule.spaced("20 millis"), times: 250 })
        )
        assert.isFalse(yield* connection.up)
        yield* server.start
        assert.isTrue(yield* Redis.ready(connection, "10 seconds"))
        assert.isNull(yield* connection.run("cache", (c) => c.get("k")), "a fresh server has no keys")
      })
    )

    it("redacts a password in the URL", () => {
      assert.strictEqual(Redis.redact("redis://user:secret@host:6379/0"), "redis://user:***@host:6379/0")
      assert.strictEqual(Redis.redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379")
    })
  }
)
