/**
 * The floor for the gateway bench: the least a Node process in front of a backend can add. Plain `node:http` in, an
 * undici Pool out (64 connections, as `sluice serve` has with SLUICE_BACKEND_SLOTS=64), the request body and the
 * answer forwarded as bytes: no parsing, checks, cache, limits or metrics. Not a product; a reference row measured in
 * the same run and harness as the gateway. Prints `proxy listening on <url>`.
 *
 *   node --import tsx bench/proxy-server.ts <backend url>
 */
import { createServer } from "node:http"
import { Pool } from "undici"

const backend = process.argv[2]
if (backend === undefined) throw new Error("usage: proxy-server.ts <backend url>")
const pool = new Pool(backend, { connections: 64 })

const server = createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (c: Buffer) => chunks.push(c))
  req.on("end", () => {
    pool
      .request({
        path: req.url ?? "/",
        method: req.method === "POST" ? "POST" : "GET",
        headers: { "content-type": req.headers["content-type"] ?? "application/json" },
        body: chunks.length === 0 ? null : Buffer.concat(chunks)
      })
      .then(async (answer) => {
        const body = Buffer.from(await answer.body.arrayBuffer())
        res.writeHead(answer.statusCode, {
          "content-type": String(answer.headers["content-type"] ?? "application/json"),
          "content-length": body.length
        })
        res.end(body)
      })
      .catch(() => {
        res.writeHead(502)
        res.end()
      })
  })
})
server.listen(0, "127.0.0.1", () => {
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("no port")
  console.log(`proxy listening on http://127.0.0.1:${address.port}`)
})
process.once("SIGTERM", () => {
  server.close()
  void pool.close()
})
