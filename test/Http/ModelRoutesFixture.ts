/**
 * Test fixture for model management: the gateway in process in front of two simulators (`a` and `b`, in that order
 * in the backend list), and small fetch helpers that talk to a simulator or the gateway directly.
 */
import { Context, Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import * as Server from "../../src/Http/Server.js"
import { BackendInfo } from "../../src/Lifecycle/BackendChoice.js"
import * as Engine from "../../src/Llm/Engine.js"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import * as Store from "../../src/Store/Store.js"
import { closedPort } from "../Cli/process.js"
import { GatewayUrl, url } from "./gateway.js"

export { GatewayUrl } from "./gateway.js"

/** The two simulators behind the gateway. */
export class Sims extends Context.Tag("test/Sims")<
  Sims,
  { readonly a: Simulator.Service; readonly b: Simulator.Service }
>() {}

const sims = Layer.scoped(
  Sims,
  Effect.all({
    a: Simulator.make({ port: 0, host: "127.0.0.1", config: fast() }),
    b: Simulator.make({ port: 0, host: "127.0.0.1", config: fast() })
  }).pipe(Effect.orDie)
)

const engine = Layer.unwrapEffect(
  Effect.map(Sims, ({ a, b }) =>
    Layer.merge(
      Engine.layer({ backends: [{ url: a.url }, { url: b.url }] }),
      Layer.succeed(BackendInfo, { kind: "simulator", urls: [a.url, b.url], requested: ["test"] })
    )
  )
)

/** Two simulators and the gateway; authentication off (loopback, no key anywhere). */
export const layer = url.pipe(
  Layer.provideMerge(Server.layer({ port: 0, host: "127.0.0.1" })),
  Layer.provide(engine),
  Layer.provideMerge(sims)
)

/** The gateway in front of simulator `a` and, second, `dead`: a loopback port nothing listens on. */
export class Dead extends Context.Tag("test/Dead")<Dead, string>() {}

export const layerWithDeadBackend = url.pipe(
  Layer.provideMerge(Server.layer({ port: 0, host: "127.0.0.1" })),
  Layer.provide(
    Layer.unwrapEffect(
      Effect.map(Effect.all([Sims, Dead]), ([{ a }, dead]) =>
        Layer.merge(
          Engine.layer({ backends: [{ url: a.url }, { url: dead }] }),
          Layer.succeed(BackendInfo, { kind: "simulator", urls: [a.url, dead], requested: ["test"] })
        )
      )
    )
  ),
  Layer.provideMerge(sims),
  Layer.provideMerge(
    Layer.effect(
      Dead,
      Effect.map(closedPort, (port) => `http://127.0.0.1:${port}`)
    )
  )
)

/** The same with an in-memory key store (authentication turns on with the first key). */
export const layerWithKeys = layer.pipe(Layer.provideMerge(Store.layerMemory))

export interface Answer {
  readonly status: number
  readonly text: string
  readonly headers: Headers
}

/** A fetch to `base + path`, the whole answer read. */
export const fetchAt = (base: string, path: string, init: RequestInit = {}) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(`${base}${path}`, init)
    return { status: response.status, text: await response.text(), headers: response.headers }
  })

/** A fetch to the gateway. */
export const gateway = (path: string, init: RequestInit = {}) =>
  Effect.flatMap(GatewayUrl, (base) => fetchAt(base, path, init))

/** The model names a server lists on /api/tags. */
export const namesAt = (base: string) =>
  Effect.map(fetchAt(base, "/api/tags"), (a) =>
    (JSON.parse(a.text) as { models: Array<{ name: string }> }).models.map((m) => m.name)
  )

/** `sha256:<hex>` of `bytes`, as Ollama names a blob. */
export const digestOf = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`

/** Collects an async iterable. */
export const collect = <A>(iterable: AsyncIterable<A>) =>
  Effect.promise(async () => {
    const out: Array<A> = []
    for await (const item of iterable) out.push(item)
    return out
  })

/** The error a promise rejects with (fails the test if it resolves). */
export const rejection = (promise: () => Promise<unknown>) =>
  Effect.promise(() =>
    promise().then(
      (value) => {
        throw new Error(`expected a rejection, got ${JSON.stringify(value)}`)
      },
      (e: unknown) => e as { readonly error?: string; readonly status_code?: number; readonly message: string }
    )
  )
