/**
 * Test fixtures for API keys: keys written straight into a store, and the auth middleware run in-process (a web
 * `Request` in, a `Response` out) on the test's runtime, so TestClock drives the key buckets.
 */
import { HttpApp, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import * as Auth from "../../src/Http/Auth.js"
import * as AuthKey from "../../src/Http/AuthKey.js"
import * as KeysRepo from "../../src/Store/KeysRepo.js"

export interface Created {
  readonly id: string
  readonly key: string
}

/** Creates a key in the store, as `sluice keys create` does. */
export const createKey = (
  name: string,
  scopes: ReadonlyArray<KeysRepo.Scope> = ["inference"],
  limits: KeysRepo.KeyLimits = {}
) =>
  Effect.gen(function* () {
    const repo = KeysRepo.make(yield* SqlClient.SqlClient)
    const made = yield* AuthKey.generate
    yield* repo.insert({
      id: made.id,
      name,
      scopes,
      limits,
      createdAt: 0,
      revokedAt: null,
      secretHash: made.secretHash
    })
    return { id: made.id, key: made.key } satisfies Created
  }).pipe(Effect.orDie)

export const revokeKey = (id: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => KeysRepo.make(sql).revoke(id, 1)).pipe(Effect.orDie)

/** A handler that answers which key it ran as, and the engine options it would pass. */
export const echo = Effect.gen(function* () {
  const key = yield* Auth.currentKey
  const options = yield* Auth.callOptions
  return HttpServerResponse.unsafeJson({ key: Option.getOrNull(Option.map(key, (k) => k.id)), options })
})

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: any
}

/** The auth middleware over `app`, called in-process: `call(path, headers)`. */
export const harness = (app: HttpApp.Default<never, never> = echo) =>
  Effect.gen(function* () {
    const auth = yield* Auth.Auth
    const runtime = yield* Effect.runtime<never>()
    const handler = HttpApp.toWebHandlerRuntime(runtime)(app, Auth.middleware(auth))
    return (path: string, headers: Record<string, string> = {}): Effect.Effect<Answer> =>
      Effect.promise(async () => {
        const response = await handler(new Request(`http://127.0.0.1${path}`, { headers }))
        const text = await response.text()
        const json = (() => {
          try {
            return JSON.parse(text)
          } catch {
            return text
          }
        })()
        return { status: response.status, headers: response.headers, body: json }
      })
  })

export const bearer = (key: string) => ({ authorization: `Bearer ${key}` })
