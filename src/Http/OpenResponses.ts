/**
 * Counts the responses of each Node server that are not finished on the socket yet, so the drain can wait for the
 * last bytes of the answers it ended (a stream's final error line) before the server closes.
 *
 * Why: the drain counts a request out when its last chunk is handed to Node, not when the socket wrote it. On a
 * loaded machine, 50 streams cut at the deadline at once took longer than a fixed grace to write their error lines,
 * and the server's close then ended them without it (test/Cli/shutdown.test.ts). Node has no count of unfinished
 * responses, so the server's `ServerResponse` class (a `createServer` option) counts itself; a `request` listener
 * would displace the provisional one (Provisional.ts).
 */
import { Effect, Schedule } from "effect"
import { type IncomingMessage, type Server, ServerResponse } from "node:http"

const open = new WeakMap<Server, { count: number }>()

const counter = (server: Server) => {
  let c = open.get(server)
  if (c === undefined) {
    c = { count: 0 }
    open.set(server, c)
  }
  return c
}

/** A ServerResponse that counts itself open on its server until it closes (finished or not). */
export class CountedResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  constructor(req: Request) {
    super(req)
    const server = (req.socket as { server?: Server } | null)?.server
    if (server === undefined) return
    const c = counter(server)
    c.count++
    this.once("close", () => c.count--)
  }
}

/** Responses of `server` not closed yet. */
export const count = (server: Server): number => open.get(server)?.count ?? 0

/** Waits (polling every 10 ms) until every response of `server` is closed. */
export const settled = (server: Server): Effect.Effect<void> =>
  Effect.repeat(
    Effect.sync(() => count(server)),
    { until: (n) => n === 0, schedule: Schedule.spaced("10 millis") }
  ).pipe(Effect.asVoid)
