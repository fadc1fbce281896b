/**
 * The memory bench's gateway row: `sluice serve` (the built bundle) in its own process, preloaded with
 * gc-on-signal.mjs so its memory is read after forced GCs as in the bench's own process; the queued streams are
 * streamed HTTP requests, each on its own connection, held open while they wait for their answer.
 */
import { existsSync, readFileSync, rmSync } from "node:fs"
import * as Http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { scrape, sum } from "./Scrape.js"
import { sluiceServe } from "./Server.js"

export interface Held {
  /** Requests whose response (status and headers) arrived. */
  readonly answered: () => number
  /** Requests that failed at the client (a connection refused or reset). */
  readonly failed: () => number
  readonly abort: () => Promise<void>
}

/** Sends `count` POSTs of `body(i)` to `url`, each on its own connection (node:http, no keep-alive), and holds them. */
const hold = (url: string, count: number, body: (i: number) => unknown): Held => {
  const agent = new Http.Agent({ keepAlive: false, maxSockets: Infinity })
  let answered = 0
  let failed = 0
  const requests = Array.from({ length: count }, (_, i) => {
    const request = Http.request(url, { method: "POST", agent, headers: { "content-type": "application/json" } })
    request.on("response", (response) => {
      answered++
      response.resume()
    })
    request.on("error", () => {
      failed++
    })
    request.end(JSON.stringify(body(i)))
    return request
  })
  return {
    answered: () => answered,
    failed: () => failed,
    abort: async () => {
      for (const request of requests) request.destroy()
      agent.destroy()
    }
  }
}

/** The memory of the server process `pid` (preloaded with gc-on-signal.mjs writing to `file`), after its GCs. */
const serverMemory = async (pid: number, file: string): Promise<NodeJS.MemoryUsage> => {
  rmSync(file, { force: true })
  process.kill(pid, "SIGUSR2")
  for (let waited = 0; !existsSync(file); waited += 50) {
    if (waited > 30_000) throw new Error("the server never wrote its memory")
    await new Promise((r) => setTimeout(r, 50))
  }
  await new Promise((r) => setTimeout(r, 50))
  return JSON.parse(readFileSync(file, "utf8")) as NodeJS.MemoryUsage
}

export interface Memory {
  readonly rss: number
  readonly heapUsed: number
  readonly external: number
}

const pick = (m: NodeJS.MemoryUsage): Memory => ({ rss: m.rss, heapUsed: m.heapUsed, external: m.external })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Polls the gateway's `sluice_http_requests_in_flight` (the scrape itself is one) until `holds`, or until it stayed
 * the same for 3 s once above 0 (within a minute); gives the last count.
 */
const inFlightUntil = async (url: string, holds: (n: number) => boolean): Promise<number> => {
  let last = NaN
  let sameFor = 0
  for (let waited = 0; waited < 60_000; waited += 100) {
    // a reused keep-alive socket the server just closed resets: such a scrape is tried again
    const n = await scrape(url).then(
      (series) => sum(series, "sluice_http_requests_in_flight"),
      () => NaN
    )
    if (holds(n)) return n
    sameFor = n === last && n > 1 ? sameFor + 100 : 0
    if (sameFor >= 3_000) return n
    if (!Number.isNaN(n)) last = n
    await sleep(100)
  }
  throw new Error(`the gateway's requests in flight stayed at ${last}`)
}

/**
 * `count` streamed `path` requests (bodies `body(i)`) held against `sluice serve` in front of `backend` with
 * `slots`, after `warm` calls; the server's memory before, once they all wait (plus 1.5 s), and after they end.
 */
export const measureGateway = async (options: {
  readonly backend: string
  readonly slots: number
  readonly count: number
  readonly path: string
  readonly body: (i: number) => unknown
  readonly warm: (i: number) => unknown
  /** Calls on the backend's wire, read while they wait. */
  readonly onTheWire: () => Promise<number>
}): Promise<{
  before: Memory
  queued: Memory
  released: Memory
  answered: number
  failed: number
  inFlight: number
  /** The requests the gateway held when its memory was read. */
  calls: number
}> => {
  const file = join(tmpdir(), `sluice-bench-memory-${process.pid}.json`)
  const gw = await sluiceServe(
    options.backend,
    { ...process.env, SLUICE_BACKEND_SLOTS: String(options.slots), SLUICE_BENCH_MEMORY_FILE: file },
    ["--expose-gc", "--import", "./bench/support/gc-on-signal.mjs"]
  )
  try {
    for (let i = 0; i < 200; i += 8) {
      const batch = Array.from({ length: 8 }, (_, j) =>
        fetch(`${gw.url}${options.path}`, { method: "POST", body: JSON.stringify(options.warm(i + j)) }).then((r) =>
          r.text()
        )
      )
      await Promise.all(batch)
    }
    const before = pick(await serverMemory(gw.pid, file))
    const held = hold(`${gw.url}${options.path}`, options.count, options.body)
    const calls = (await inFlightUntil(gw.url, (n) => n > options.count)) - 1
    await sleep(1500)
    const queued = pick(await serverMemory(gw.pid, file))
    const answered = held.answered()
    const failed = held.failed()
    const inFlight = await options.onTheWire()
    await held.abort()
    await inFlightUntil(gw.url, (n) => n <= 1)
    const released = pick(await serverMemory(gw.pid, file))
    return { before, queued, released, answered, failed, inFlight, calls }
  } finally {
    await gw.stop()
    rmSync(file, { force: true })
  }
}
