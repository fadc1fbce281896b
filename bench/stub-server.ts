/**
 * A minimal Ollama stand-in for the overhead bench: plain `node:http`, one canned non-streamed `/api/chat`
 * answer, `/api/tags` and `GET /`. It costs far less per request than the simulator, so the client under test,
 * not the server, sets the figure. Prints `stub listening on <url>`.
 */
import { createServer } from "node:http"

const chat = JSON.stringify({
  model: "llama3.2",
  created_at: "2026-01-01T00:00:00.000Z",
  message: { role: "assistant", content: "Quick answer from the stub server, always the same." },
  done: true,
  done_reason: "stop",
  total_duration: 1000,
  load_duration: 0,
  prompt_eval_count: 10,
  prompt_eval_duration: 100,
  eval_count: 12,
  eval_duration: 900
})
const tags = JSON.stringify({
  models: [
    {
      name: "llama3.2:latest",
      model: "llama3.2:latest",
      modified_at: "2026-01-01T00:00:00Z",
      size: 1,
      digest: "0",
      details: {}
    }
  ]
})

const server = createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (c: Buffer) => chunks.push(c))
  req.on("end", () => {
    const body = req.url === "/api/chat" ? chat : req.url === "/api/tags" ? tags : "Ollama is running"
    res.writeHead(200, {
      "content-type": req.url === "/" ? "text/plain; charset=utf-8" : "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body)
    })
    res.end(body)
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, "127.0.0.1", () => {
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  console.log(`stub listening on http://127.0.0.1:${port}`)
})
const stop = () => server.close(() => process.exit(0))
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
