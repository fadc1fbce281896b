/**
 * Hostile input on every POST route of both API families: each refusal is the right 4xx in the family's error shape,
 * stamped with the request id and the overhead, no answer is a 5xx, and the gateway stays healthy. The body cap is
 * lowered to 64 KiB for the run through the configuration (`SLUICE_MAX_BODY_BYTES`).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { connect } from "node:net"
import * as Guard from "../../src/Http/Guard.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import { GatewayUrl, layer as gateway } from "./gateway.js"
import { type Family, refusalOf } from "./refusals.js"

const cap = 64 * 1024

const limits = Layer.setConfigProvider(
  ConfigProvider.orElse(
    ConfigProvider.fromMap(new Map([["SLUICE_MAX_BODY_BYTES", String(cap)]]), { pathDelim: "_" }),
    () => ConfigProvider.fromEnv()
  )
)

interface Route {
  readonly path: string
  readonly family: Family
  /** A valid body for `model`. */
  readonly valid: (model: string) => Record<string, unknown>
  /** A body with a field of the wrong type, and what the answer says about it. */
  readonly wrongType: Record<string, unknown>
  readonly wrongTypeSays: RegExp
}

const user = [{ role: "user", content: "hi" }]

const routes: ReadonlyArray<Route> = [
  {
    path: "/api/chat",
    family: "ollama",
    valid: (model) => ({ model, messages: user, stream: false }),
    wrongType: { model: "llama3.2", messages: "hi" },
    wrongTypeSays: /^invalid type for "messages": expected an array of objects, got a string$/
  },
  {
    path: "/api/generate",
    family: "ollama",
    valid: (model) => ({ model, prompt: "hi", stream: false }),
    wrongType: { model: "llama3.2", prompt: 42 },
    wrongTypeSays: /^invalid type for "prompt": expected a string, got an integer$/
  },
  {
    path: "/api/embed",
    family: "ollama",
    valid: (model) => ({ model, input: "hi" }),
    wrongType: { model: "nomic-embed-text", input: [1, 2] },
    wrongTypeSays: /^invalid input type$/
  },
  {
    path: "/api/embeddings",
    family: "ollama",
    valid: (model) => ({ model, prompt: "hi" }),
    wrongType: { model: "nomic-embed-text", prompt: { text: "hi" } },
    wrongTypeSays: /^invalid type for "prompt": expected a string, got an object$/
  },
  {
    path: "/api/show",
    family: "ollama",
    valid: (model) => ({ model }),
    wrongType: { model: 42 },
    wrongTypeSays: /^invalid type for "model": expected a string, got an integer$/
  },
  {
    path: "/v1/chat/completions",
    family: "openai",
    valid: (model) => ({ model, messages: user }),
    wrongType: { model: "llama3.2", messages: [{ role: "user", content: 42 }] },
    wrongTypeSays:
      /^Invalid type for 'messages\[0\]\.content': expected one of a string or an array of objects, but got an integer instead\.$/
  },
  {
    path: "/v1/completions",
    family: "openai",
    valid: (model) => ({ model, prompt: "hi" }),
    wrongType: { model: "llama3.2", prompt: ["a", "b"] },
    wrongTypeSays: /^Invalid type for 'prompt': expected a string, but got an array instead\.$/
  },
  {
    path: "/v1/embeddings",
    family: "openai",
    valid: (model) => ({ model, input: "hi" }),
    // `input` is checked by the translation, in the words of Ollama's /v1 (OpenAiRequest.embedding)
    wrongType: { model: "nomic-embed-text", input: [1, 2] },
    wrongTypeSays: /^invalid input$/
  }
]

const modelFor = (route: Route) => (route.path.includes("embed") ? "nomic-embed-text" : "llama3.2")

const encoder = new TextEncoder()

type Body = string | Uint8Array | ReadableStream<Uint8Array>

/** Every answer seen, so the last test can check that none was a 5xx. */
const statuses: Array<number> = []

const post = (path: string, body: Body, headers: Record<string, string> = {}) =>
  Effect.flatMap(GatewayUrl, (url) =>
    Effect.promise(async () => {
      const response = await fetch(`${url}${path}`, {
        method: "POST",
        body,
        headers,
        ...(body instanceof ReadableStream ? { duplex: "half" } : {})
      } as RequestInit)
      statuses.push(response.status)
      return { response, text: await response.text() }
    })
  )

/** Checks the status, the family's error shape (no Schema text in it) and the stamped headers. */
const refused = (route: Route, body: Body, status: number, message?: RegExp) =>
  Effect.gen(function* () {
    const { response, text } = yield* post(route.path, body)
    const what = `${route.path} ${status}: ${text.slice(0, 200)}`
    assert.strictEqual(response.status, status, what)
    assert.strictEqual(response.headers.get("content-type"), "application/json; charset=utf-8", what)
    assert.isNotNull(response.headers.get("x-sluice-request-id"), what)
    assert.isNotNull(response.headers.get("x-sluice-overhead-ms"), what)
    const refusal = refusalOf(route.family, status, text, what)
    if (message) assert.match(refusal.message, message, what)
  })

const deep = (depth: number) => `{"model":"llama3.2","x":${"[".repeat(depth)}${"]".repeat(depth)}}`

const invalidUtf8 = (route: Route) => {
  const [head, tail] = JSON.stringify(route.valid(modelFor(route))).split('"hi"')
  return Buffer.concat([Buffer.from(`${head}"`), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from(`"${tail ?? ""}`)])
}

const oversized = (route: Route) => JSON.stringify({ ...route.valid(modelFor(route)), padding: "x".repeat(cap + 1) })

/** The same oversized body sent chunked (no content-length), so the cap acts while reading. */
const chunked = (text: string) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      const bytes = encoder.encode(text)
      for (let i = 0; i < bytes.length; i += 8192) controller.enqueue(bytes.slice(i, i + 8192))
      controller.close()
    }
  })

layer(gateway(fast()).pipe(Layer.provide(limits)), { excludeTestServices: true })(
  "gateway: hostile input on every route",
  (it) => {
    for (const route of routes) {
      it.effect(`${route.path}: malformed JSON, wrong types, missing fields are 400`, () =>
        Effect.gen(function* () {
          yield* refused(route, "{not json", 400, /invalid JSON/)
          yield* refused(route, "", 400, /missing request body/)
          yield* refused(route, "[1,2,3]", 400)
          yield* refused(route, JSON.stringify(route.wrongType), 400, route.wrongTypeSays)
          // /api/show accepts `name` in place of `model`, so no field is missing there; the engine answers 400
          yield* refused(
            route,
            JSON.stringify({}),
            400,
            route.path === "/api/show"
              ? undefined
              : route.family === "ollama"
                ? /^model is required$/
                : /^Missing required parameter: '(model|messages|prompt)'\.$/
          )
        })
      )

      it.effect(`${route.path}: an oversized body is 413, declared or chunked`, () =>
        Effect.gen(function* () {
          yield* refused(route, oversized(route), 413, /too large/)
          yield* refused(route, chunked(oversized(route)), 413, /too large/)
        })
      )

      it.effect(`${route.path}: deep nesting and invalid UTF-8 are 400`, () =>
        Effect.gen(function* () {
          yield* refused(route, deep(1000), 400, /nested deeper than 64/)
          yield* refused(route, deep(30_000), 400, /nested deeper than 64/)
          yield* refused(route, invalidUtf8(route), 400, /invalid UTF-8/)
        })
      )

      it.effect(`${route.path}: an unknown model is 404, a valid body passes`, () =>
        Effect.gen(function* () {
          yield* refused(route, JSON.stringify(route.valid("nope")), 404, /not found/)
          const { response } = yield* post(route.path, JSON.stringify(route.valid(modelFor(route))))
          assert.strictEqual(response.status, 200, route.path)
          assert.isNotNull(response.headers.get("x-sluice-request-id"))
          assert.match(response.headers.get("x-sluice-overhead-ms")!, /^\d+\.\d{2}$/)
        })
      )
    }

    it.effect("empty messages: 400 on /v1/chat/completions, Ollama's load answer on /api/chat", () =>
      Effect.gen(function* () {
        const openai = routes.find((r) => r.path === "/v1/chat/completions")!
        yield* refused(
          openai,
          JSON.stringify({ model: "llama3.2", messages: [] }),
          400,
          /^\[\] is too short - 'messages'$/
        )
        const { response, text } = yield* post(
          "/api/chat",
          JSON.stringify({ model: "llama3.2", messages: [], stream: false })
        )
        assert.strictEqual(response.status, 200)
        assert.strictEqual((JSON.parse(text) as { done_reason: string }).done_reason, "load")
      })
    )

    it.effect("/v1 translation refusals: image URLs, bad encodings, bad inputs, bad effort", () =>
      Effect.gen(function* () {
        const [chat, , embeddings] = routes.filter((r) => r.family === "openai") as [Route, Route, Route]
        const image = (url: string) =>
          JSON.stringify({
            model: "llama3.2",
            messages: [
              {
                role: "user",
                content: [
                  { type: "text", text: "what is it?" },
                  { type: "image_url", image_url: { url } }
                ]
              }
            ]
          })
        yield* refused(chat, image("https://example.com/cat.png"), 400, /image URLs are not currently supported/)
        yield* refused(chat, image("ftp://cat"), 400, /invalid image input/)
        yield* refused(
          chat,
          JSON.stringify({ model: "llama3.2", messages: user, reasoning_effort: "extreme" }),
          400,
          /invalid reasoning value/
        )
        yield* refused(
          embeddings,
          JSON.stringify({ model: "nomic-embed-text", input: "hi", encoding_format: "int8" }),
          400,
          /^Invalid value for 'encoding_format' = int8\. Supported values: \['float', 'base64'\]\.$/
        )
        yield* refused(embeddings, JSON.stringify({ model: "nomic-embed-text", input: [] }), 400, /^invalid input$/)
        yield* refused(embeddings, JSON.stringify({ model: "nomic-embed-text" }), 400, /^invalid input$/)
      })
    )

    it.effect("GET /v1/models/{unknown} is a 404 envelope; unknown paths stay plain 404s with the headers", () =>
      Effect.gen(function* () {
        const url = yield* GatewayUrl
        const missing = yield* Effect.promise(() => fetch(`${url}/v1/models/nope`))
        statuses.push(missing.status)
        assert.strictEqual(missing.status, 404)
        const body = (yield* Effect.promise(() => missing.json())) as { error: { type: string; message: string } }
        assert.strictEqual(body.error.type, "not_found_error")
        assert.strictEqual(body.error.message, "model 'nope' not found")
        const nowhere = yield* Effect.promise(() => fetch(`${url}/nowhere`))
        assert.strictEqual(nowhere.status, 404)
        assert.isNotNull(nowhere.headers.get("x-sluice-request-id"))
        assert.isNotNull(nowhere.headers.get("x-sluice-overhead-ms"))
      })
    )

    it.effect("after all of it: no answer was a 5xx and /health is still 200", () =>
      Effect.gen(function* () {
        const url = yield* GatewayUrl
        assert.isAbove(statuses.length, 90)
        assert.deepStrictEqual(
          statuses.filter((s) => s >= 500),
          []
        )
        const health = yield* Effect.promise(() => fetch(`${url}/health`))
        assert.strictEqual(health.status, 200)
      })
    )
  }
)

/** Sends `request` on a raw socket and resolves with what the server answered before it closed the connection. */
const raw = (port: number, request: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(request))
    let answer = ""
    socket.on("data", (d) => (answer += d.toString()))
    socket.on("close", () => resolve(answer))
    socket.on("error", reject)
  })

describe("Guard.createServer: slow clients", () => {
  it.live("a client too slow with its headers, or with its body, gets 408 and is disconnected", () =>
    Effect.acquireUseRelease(
      Effect.promise(
        () =>
          new Promise<ReturnType<typeof Guard.createServer>>((resolve) => {
            const server = Guard.createServer({ headersTimeout: 300, requestTimeout: 600, keepAliveTimeout: 200 })
            server.on("request", (req, res) => req.resume().on("end", () => res.end("ok")))
            server.listen(0, "127.0.0.1", () => resolve(server))
          })
      ),
      (server) =>
        Effect.promise(async () => {
          const port = (server.address() as { port: number }).port
          const headers = await raw(port, "POST / HTTP/1.1\r\nHost: x\r\n")
          assert.match(headers, /^HTTP\/1\.1 408/)
          const body = await raw(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
          assert.match(body, /^HTTP\/1\.1 408/)
          // an idle keep-alive connection is closed after keepAliveTimeout
          const idle = await raw(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
          assert.match(idle, /^HTTP\/1\.1 200/)
        }),
      (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
    )
  )
})
