/**
 * The gateway's provisional answer: while no app is attached to the Node server, every request gets 503 with
 * `Retry-After` and a JSON body (`{"error":"sluice is starting"}`, or the shutdown message once the app left).
 *
 * Choices:
 * - Why it exists: `NodeHttpServer.layer` listens while it builds, and `HttpServer.serve` attaches the app's
 *   `request` listener only once the rest of the gateway is built (the first health round, auth, batch jobs). Node
 *   emits a request that arrives in between to no listener and keeps no backlog: it was never answered. So a
 *   listener is there from the moment the server exists, and load balancers and probes get 503 (not ready, come
 *   back in 1 s) instead of a hung connection; `/health/ready` reads 503 until the app answers it.
 * - Handover without a gap: Node emits `newListener` synchronously inside `server.on("request", app)`, so the
 *   provisional listener leaves in the same tick the app's arrives: no request falls between the two, none is
 *   answered twice. `@effect/platform-node` attaches with `server.on("request", handler)` (0.108), which this
 *   relies on; any other `request` listener would take over the same way.
 * - The way back: when the app's listener is removed (the serve scope closes at shutdown, before the server itself
 *   closes), the provisional listener returns with the shutdown message, `Retry-After: 5` (as the drain's refusal)
 *   and `Connection: close`, so a keep-alive client's late request is answered and its connection ends instead of
 *   holding up the server's close.
 * - Not instead binding later: the answer is the guarantee whatever the order of the layers; binding after the
 *   rest of the gateway would only shorten the window this covers.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import { ShuttingDown } from "../Domain/LlmError.js"

export const startingMessage = "sluice is starting"

const answer = (message: string, retryAfter: number, close: boolean) => (response: ServerResponse) => {
  const body = JSON.stringify({ error: message })
  response.writeHead(503, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "retry-after": String(retryAfter),
    ...(close ? { connection: "close" } : {})
  })
  response.end(body)
}

const starting = answer(startingMessage, 1, false)
const stopping = answer(new ShuttingDown().message, 5, true)

/** `server`, answering 503 whenever no other `request` listener is attached (see the module comment). */
export const untilServed = (server: Server): Server => {
  let respond = starting
  const provisional = (_request: IncomingMessage, response: ServerResponse) => respond(response)
  server.on("newListener", (event: string | symbol, listener: unknown) => {
    if (event === "request" && listener !== provisional) server.off("request", provisional)
  })
  server.on("removeListener", (event: string | symbol, listener: unknown) => {
    if (event === "request" && listener !== provisional && server.listenerCount("request") === 0) {
      respond = stopping
      server.on("request", provisional)
    }
  })
  server.on("request", provisional)
  return server
}
