/**
 * Issue 14's "Done when" for limits: three `sluice serve` processes sharing one redis-server and one simulator, one
 * API key limited to 60 requests per minute, 300 requests round-robin over the three: exactly 60 succeed and 240
 * get 429 with Retry-After (each instance alone would let its own 60 through: 180).
 *
 * The three instances share one SQLite file (the same SLUICE_DATA_DIR): a key is made once by `sluice keys create`
 * and every instance reads it (WAL: readers in several processes at once); making it in three databases cannot
 * work, since each `keys create` makes a new random secret. Shipped defaults everywhere but SLUICE_REDIS_URL.
 *
 * With Redis, `rpm` is a sliding minute (Http/AuthLimits.ts): the 300 may take as long as they take (seconds on a
 * loaded machine), and every 429's Retry-After is the time until the first admitted request is a minute old.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { redisBinary, redisServer, skipReason } from "../support/RedisServer.js"
import { sluice, waitFor } from "./process.js"

const listening = /Listening on (http:\/\/[\w.:[\]]+)/

const chat = (url: string, key: string) =>
  fetch(`${url}/api/chat`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "llama3.2",
      messages: [{ role: "user", content: "hi" }],
      stream: false,
      options: { num_predict: 4 }
    })
  }).then(async (response) => {
    await response.arrayBuffer()
    return { status: response.status, retryAfter: response.headers.get("retry-after") }
  })

describe.skipIf(redisBinary === undefined)(
  `scale-out: per-key limits across three instances (${redisBinary === undefined ? skipReason : "redis-server"})`,
  () => {
    it.scopedLive(
      "rpm 60 over three instances sharing Redis: exactly 60 of 300 succeed, 240 get 429 with Retry-After",
      () =>
        Effect.gen(function* () {
          const redis = yield* redisServer
          const dataDir = join(mkdtempSync(join(tmpdir(), "sluice-scaleout-")), "data")
          const env = { SLUICE_DATA_DIR: dataDir, SLUICE_REDIS_URL: redis.url }
          const created = yield* sluice(["keys", "create", "--name", "shared", "--rpm", "60"], env)
          assert.strictEqual(yield* Effect.promise(() => created.exited), 0, created.stderr())
          const key = /sk-sluice-[A-Za-z0-9]{12}-[A-Za-z0-9_-]{43}/.exec(created.stdout())![0]

          const sim = yield* sluice(["simulate", "--port", "0"])
          const simUrl = yield* waitFor(sim, /simulator on (http:\/\/[\w.:]+)/)
          const instances = yield* Effect.all(
            [1, 2, 3].map(() =>
              Effect.flatMap(sluice(["serve", "--port", "0", "--ollama", simUrl], env), (run) =>
                waitFor(run, listening)
              )
            ),
            { concurrency: "unbounded" }
          )
          // warm connections (public routes, no key, nothing counted), so the burst is decided at once
          yield* Effect.promise(() =>
            Promise.all(
              instances.flatMap((url) =>
                Array.from({ length: 100 }, () => fetch(`${url}/health`).then((r) => r.text()))
              )
            )
          )

          const answers = yield* Effect.promise(() =>
            Promise.all(Array.from({ length: 300 }, (_, i) => chat(instances[i % 3]!, key)))
          )
          const ok = answers.filter((a) => a.status === 200)
          const limited = answers.filter((a) => a.status === 429)
          assert.strictEqual(ok.length, 60)
          assert.strictEqual(limited.length, 240)
          for (const answer of limited) {
            const seconds = Number(answer.retryAfter)
            assert.isTrue(seconds > 30 && seconds <= 60, `Retry-After ${answer.retryAfter}`)
          }
        }),
      30_000
    )
  }
)
