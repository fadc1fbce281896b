/**
 * A scripted loopback HTTP server for the OllamaClient tests: each test passes a handler that answers exactly what
 * it needs (statuses, NDJSON written line by line, stalls, destroyed sockets). It records the requests and counts
 * the sockets open at once. Runs on real time (use `it.scopedLive`).
 */
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { OllamaClient, type Options } from "../../src/Ollama/OllamaClient.js"

export interface Recorded {
  readonly method: string
  readonly url: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
}

export type Handler = (req: Http.IncomingMessage, res: Http.ServerResponse, body: string) => void

export interface FakeServer {
  readonly url: string
  readonly requests: Array<Recorded>
  readonly sockets: { open: number; maxOpen: number; total: number }
}

/** A promise resolved from outside, for "wait until the other side did X" without timings. */
export interface Gate<A = void> {
  readonly promise: Promise<A>
  readonly open: (value: A) => void
  readonly wait: Effect.Effect<A>
}

export const gate = <A = void>(): Gate<A> => {
  let open: (value: A) => void = () => undefined
  const promise = new Promise<A>((resolve) => {
    open = resolve
  })
  return { promise, open, wait: Effect.promise(() => promise) }
}

const listen = (handler: Handler) =>
  Effect.async<{ server: Http.Server; fake: FakeServer }>((resume) => {
    const requests: Array<Recorded> = []
    const sockets = { open: 0, maxOpen: 0, total: 0 }
    const server = Http.createServer((req, res) => {
      const parts: Array<Buffer> = []
      req.on("data", (part: Buffer) => parts.push(part))
      req.on("end", () => {
        const body = Buffer.concat(parts).toString("utf8")
        requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body })
        handler(req, res, body)
      })
    })
    server.on("connection", (socket) => {
      sockets.open += 1
      sockets.total += 1
      sockets.maxOpen = Math.max(sockets.maxOpen, sockets.open)
      socket.on("close", () => {
        sockets.open -= 1
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ server, fake: { url: `http://127.0.0.1:${port}`, requests, sockets } }))
    })
  })

const close = (server: Http.Server) =>
  Effect.async<void>((resume) => {
    server.closeAllConnections()
    server.close(() => resume(Effect.void))
  })

/** Starts the server on a random loopback port; it is closed (with every connection) when the scope closes. */
export const fakeServer = (handler: Handler): Effect.Effect<FakeServer, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(listen(handler), ({ server }) => close(server)),
    ({ fake }) => fake
  )

/** A URL on which nothing listens: a server is started to get a free port, then closed. */
export const refusedUrl: Effect.Effect<string> = Effect.scoped(
  Effect.map(
    fakeServer(() => undefined),
    (fake) => fake.url
  )
)

/** The client (with its own pool) for `url`; the pool lives as long as the scope. */
export const clientFor = (url: string, options: Partial<Options> = {}) =>
  Effect.map(Layer.build(OllamaClient.layer({ ...options, host: url })), Context.get(OllamaClient))

/** Writes a JSON value as one NDJSON line. */
export const line = (value: unknown) => `${JSON.stringify(value)}\n`

export const json = (
  res: Http.ServerResponse,
  status: number,
  value: unknown,
  headers: Http.OutgoingHttpHeaders = {}
) => {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers })
  res.end(JSON.stringify(value))
}

export const ndjsonHead = (res: Http.ServerResponse) => {
  res.writeHead(200, { "content-type": "application/x-ndjson" })
  res.flushHeaders()
}

const at = "2025-10-26T17:15:24.16Z"

/** A chat chunk; `done` adds the final fields. */
export const chatChunk = (content: string, done = false) => ({
  model: "m",
  created_at: at,
  message: { role: "assistant", content },
  done,
  ...(done ? { done_reason: "stop", eval_count: 3, eval_duration: 1000 } : {})
})

/** A generate chunk; `done` adds the final fields. */
export const generateChunk = (response: string, done = false) => ({
  model: "m",
  created_at: at,
  response,
  done,
  ...(done ? { done_reason: "stop", context: [1, 2] } : {})
})
