import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type AddressInfo, type Server, createServer } from "node:net"
import { Ollama } from "ollama"
import { closedPort, sluice, waitFor } from "./process.js"

const listening = /Listening on (http:\/\/[\w.:[\]]+)/
const messages = [{ role: "user", content: "hi" }]

describe("sluice serve (the built bin)", () => {
  it.scopedLive("without Ollama, serves in front of the simulator, says so, and stops cleanly on SIGTERM", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const run = yield* sluice(["serve", "--port", "0"], { OLLAMA_HOST: `127.0.0.1:${port}` })
      const url = yield* waitFor(run, listening)
      assert.include(run.stdout(), "SIMULATED")
      assert.include(run.stdout(), `No Ollama answered at http://127.0.0.1:${port}`)
      const health = yield* Effect.promise(() => fetch(`${url}/health`).then((r) => r.json()))
      assert.strictEqual((health as { backend: string }).backend, "simulator")

      const response = yield* Effect.promise(() =>
        fetch(`${url}/api/chat`, { method: "POST", body: JSON.stringify({ model: "llama3.2", messages }) })
      )
      const lines = (yield* Effect.promise(() => response.text())).trim().split("\n")
      const last = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>
      assert.strictEqual(last.done, true)
      assert.isTrue(Number.isInteger(last.eval_duration))

      const ollama = new Ollama({ host: url })
      const list = yield* Effect.promise(() => ollama.list())
      assert.isAbove(list.models.length, 0)

      run.child.kill("SIGTERM")
      assert.strictEqual(yield* Effect.promise(() => run.exited), 0)
    })
  )

  it.scopedLive("--backend ollama refuses the simulator fallback with a clear message", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const run = yield* sluice(["serve", "--port", "0", "--backend", "ollama", "--ollama", `127.0.0.1:${port}`])
      assert.strictEqual(yield* Effect.promise(() => run.exited), 1)
      assert.include(run.stderr(), `not answering: http://127.0.0.1:${port}`)
      assert.include(run.stderr(), "--backend simulator")
    })
  )

  it.scopedLive("NODE_ENV=production refuses the fallback too", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const run = yield* sluice(["serve", "--port", "0"], { NODE_ENV: "production", OLLAMA_HOST: `:${port}` })
      assert.strictEqual(yield* Effect.promise(() => run.exited), 1)
      assert.include(run.stderr(), "will not fall back")
    })
  )

  it.scopedLive("serves in front of a real Ollama-compatible server when one answers", () =>
    Effect.gen(function* () {
      const sim = yield* sluice(["simulate", "--port", "0"])
      const simUrl = yield* waitFor(sim, /simulator on (http:\/\/[\w.:]+)/)
      const run = yield* sluice(["serve", "--port", "0", "--ollama", simUrl])
      const url = yield* waitFor(run, listening)
      assert.notInclude(run.stdout(), "SIMULATED")
      const health = (yield* Effect.promise(() => fetch(`${url}/health`).then((r) => r.json()))) as {
        backend: string
        backends: Array<{ url: string }>
      }
      assert.strictEqual(health.backend, "ollama")
      assert.deepStrictEqual(
        health.backends.map((b) => b.url),
        [simUrl]
      )
    })
  )

  it.scopedLive("a port already in use fails startup with the port check's detail and advice", () =>
    Effect.gen(function* () {
      const taken = yield* Effect.acquireRelease(
        Effect.promise(
          () =>
            new Promise<Server>((resolve) => {
              const server = createServer().listen(0, "127.0.0.1", () => resolve(server))
            })
        ),
        (server) => Effect.sync(() => server.close())
      )
      const address = taken.address() as AddressInfo
      const run = yield* sluice(["serve", "--port", String(address.port), "--backend", "simulator"])
      assert.strictEqual(yield* Effect.promise(() => run.exited), 1)
      assert.include(run.stderr(), "listen-port-free")
      assert.include(run.stderr(), "EADDRINUSE")
      assert.include(run.stderr(), "stop the process using it")
    })
  )

  it.scopedLive("--help lists the commands", () =>
    Effect.gen(function* () {
      const run = yield* sluice(["--help"])
      assert.strictEqual(yield* Effect.promise(() => run.exited), 0)
      assert.include(run.stdout(), "serve")
      assert.include(run.stdout(), "simulate")
    })
  )
})
