/** Health: the background checks, their timeouts, readiness, and the three endpoints against the simulator. */
import { HttpClient, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Ref, TestClock } from "effect"
import { tmpdir } from "node:os"
import * as HealthRoutes from "../../src/Http/HealthRoutes.js"
import { BackendInfo } from "../../src/Lifecycle/BackendChoice.js"
import * as Engine from "../../src/Llm/Engine.js"
import { type Component, Health, Readiness, runOnce } from "../../src/Observability/Health.js"
import * as HealthComponents from "../../src/Observability/HealthComponents.js"
import { processComponent } from "../../src/Observability/HealthProcess.js"
import * as Simulator from "../../src/Simulator/Simulator.js"
import { fast } from "../../src/Simulator/SimulatorConfig.js"
import * as Store from "../../src/Store/Store.js"
import { closedPort } from "../Cli/process.js"

const ok = (name: string, critical = true): Component => ({
  name,
  critical,
  check: Effect.succeed({ status: "ok", detail: {} })
})

/** The service, running for the life of the test's scope. */
const start = <E, R>(layer: Layer.Layer<Health, E, R>) => Effect.map(Layer.build(layer), Context.get(Health))

const hanging = (name: string, critical: boolean) =>
  Effect.map(Deferred.make<void>(), (never): Component => ({
    name,
    critical,
    check: Effect.as(Deferred.await(never), { status: "ok", detail: {} })
  }))

describe("Health (the service)", () => {
  it.scoped("a hanging check is down 'timed out' after the timeout, and the report answers while it hangs", () =>
    Effect.gen(function* () {
      const stuck = yield* hanging("stuck", false)
      const building = yield* Effect.fork(
        start(Health.Default([ok("backends"), stuck], { timeout: "2 seconds", interval: "10 seconds" }))
      )
      yield* TestClock.adjust("2 seconds")
      const health = yield* Fiber.join(building)

      const first = yield* health.report
      const component = first.components.find((c) => c.name === "stuck")!
      assert.strictEqual(component.status, "down")
      assert.include(String(component.detail.reason), "timed out")
      assert.isTrue(first.ready, "a non-critical component does not make Sluice unready")
      assert.strictEqual(first.status, "degraded")

      // the next round starts and hangs again: the report still answers at once, with the last results
      yield* TestClock.adjust("10 seconds")
      const during = yield* health.report
      assert.strictEqual(during.components.length, 2)
      assert.isTrue(during.ready)
    })
  )

  it.scoped("a critical check that hangs makes Sluice not ready, naming it", () =>
    Effect.gen(function* () {
      const stuck = yield* hanging("database", true)
      const fiber = yield* Effect.fork(start(Health.Default([ok("backends"), stuck])))
      yield* TestClock.adjust("2 seconds")
      const health = yield* Fiber.join(fiber)
      const report = yield* health.report
      assert.isFalse(report.ready)
      assert.strictEqual(report.status, "down")
      assert.deepStrictEqual(report.failing, ["database"])
    })
  )

  it.scoped("a failing check is down with its error; a later success brings it back", () =>
    Effect.gen(function* () {
      const healthy = yield* Ref.make(false)
      const flaky: Component = {
        name: "backends",
        critical: true,
        check: Effect.flatMap(Ref.get(healthy), (h) =>
          h ? Effect.succeed({ status: "ok" as const, detail: {} }) : Effect.fail(new Error("connection refused"))
        )
      }
      const health = yield* start(Health.Default([flaky], { interval: "10 seconds" }))
      const before = yield* health.report
      assert.isFalse(before.ready)
      assert.strictEqual(before.components[0]!.detail.reason, "connection refused")
      yield* Ref.set(healthy, true)
      yield* TestClock.adjust("10 seconds")
      assert.isTrue((yield* health.report).ready)
    })
  )

  it.scoped("shutting down (own flag or a provided Readiness) fails liveness and readiness", () =>
    Effect.gen(function* () {
      const health = yield* start(Health.Default([ok("backends")]))
      assert.isTrue(yield* health.live)
      yield* health.markShuttingDown
      assert.isFalse(yield* health.live)
      assert.isFalse((yield* health.report).ready)

      const flag = yield* Ref.make(false)
      const owned = yield* start(Health.Default([ok("backends")]).pipe(Layer.provide(Readiness.fromRef(flag))))
      assert.isTrue((yield* owned.report).ready)
      yield* Ref.set(flag, true)
      assert.isFalse(yield* owned.live)
      assert.isTrue((yield* owned.report).shuttingDown)
    })
  )
})

// ---- the standard components over fakes -------------------------------------------------------------------

const fakeBackend = (
  url: string,
  state: "closed" | "open" | "half-open",
  queue: { queued?: number; blocked?: number; oldestWaitMs?: number } = {}
): HealthComponents.BackendSource => ({
  url,
  client: { version: Effect.dieMessage("not in this fake"), list: Effect.dieMessage("not in this fake") },
  breaker: { state: Effect.succeed(state) },
  slots: {
    snapshot: Effect.succeed({ limit: 4, inFlight: 4, queued: 0, blocked: 0, oldestWaitMs: 0, ...queue })
  }
})

describe("Health components", () => {
  it.effect("breakers: degraded when one is open, down when all are; neither makes Sluice unready", () =>
    Effect.gen(function* () {
      const some = yield* runOnce([HealthComponents.breakers([fakeBackend("a", "open"), fakeBackend("b", "closed")])])
      assert.strictEqual(some.components[0]!.status, "degraded")
      assert.include(String(some.components[0]!.detail.reason), "a open")
      const all = yield* runOnce([HealthComponents.breakers([fakeBackend("a", "open"), fakeBackend("b", "open")])])
      assert.strictEqual(all.components[0]!.status, "down")
      assert.isTrue(all.ready)
      assert.strictEqual(all.status, "degraded")
    })
  )

  it.effect("scheduler: depth against capacity and the oldest wait", () =>
    Effect.gen(function* () {
      const status = (queue: Parameters<typeof fakeBackend>[2]) =>
        Effect.map(
          runOnce([HealthComponents.scheduler([fakeBackend("a", "closed", queue)], { capacity: 10 })]),
          (r) => r.components[0]!.status
        )
      assert.strictEqual(yield* status({ queued: 2 }), "ok")
      assert.strictEqual(yield* status({ queued: 8 }), "degraded")
      assert.strictEqual(yield* status({ queued: 10, blocked: 3 }), "down")
      assert.strictEqual(yield* status({ queued: 1, oldestWaitMs: 6_000 }), "degraded")
      assert.strictEqual(yield* status({ queued: 1, oldestWaitMs: 31_000 }), "down")
    })
  )

  it.effect("process: heap, RSS and free disk against their limits", () =>
    Effect.gen(function* () {
      const dir = tmpdir()
      const fine = yield* runOnce([processComponent(dir, { minFreeDiskMb: 1 })])
      assert.strictEqual(fine.components[0]!.status, "ok")
      assert.isAbove(fine.components[0]!.detail.freeDiskMb as number, 1)
      const full = yield* runOnce([processComponent(dir, { minFreeDiskMb: 1e12, maxRssMb: 1 })])
      assert.strictEqual(full.components[0]!.status, "down")
      assert.include(String(full.components[0]!.detail.reason), "disk down")
      assert.include(String(full.components[0]!.detail.reason), "rss down")
      assert.isTrue(full.ready, "process is not critical")
    })
  )
})

// ---- the endpoints, live, against the simulator -------------------------------------------------------------

const engineOver = (urls: ReadonlyArray<string>) =>
  Layer.merge(
    Engine.layer({ backends: urls.map((url) => ({ url })) }),
    Layer.succeed(BackendInfo, { kind: "simulator", urls, requested: urls })
  )

const serve = <E, R>(health: Layer.Layer<Health, E, R>) =>
  HttpServer.serve(HealthRoutes.routes).pipe(Layer.provideMerge(health), Layer.provideMerge(NodeHttpServer.layerTest))

const get = (path: string) =>
  Effect.flatMap(HttpClient.get(path), (r) =>
    Effect.map(r.json, (body) => ({ status: r.status, body: body as Record<string, any> }))
  )

const gateway = (urls: ReadonlyArray<string>, settings: Parameters<typeof HealthRoutes.layer>[0] = {}) =>
  Layer.build(serve(HealthRoutes.layer(settings).pipe(Layer.provideMerge(engineOver(urls)))))

const simulator = Simulator.make({ port: 0, host: "127.0.0.1", config: fast() })

describe("Health endpoints", () => {
  it.scopedLive("all ok: ready 200, live 200, /health 200 with the five components and the backend kind", () =>
    Effect.gen(function* () {
      const sim = yield* simulator
      yield* Effect.gen(function* () {
        const ready = yield* get("/health/ready")
        assert.strictEqual(ready.status, 200)
        assert.strictEqual(ready.body.status, "ready")
        const live = yield* get("/health/live")
        assert.strictEqual(live.status, 200)
        const health = yield* get("/health")
        assert.strictEqual(health.status, 200)
        assert.strictEqual(health.body.status, "ok")
        assert.strictEqual(health.body.backend, "simulator")
        assert.deepStrictEqual(Object.keys(health.body.components), [
          "backends",
          "database",
          "breakers",
          "scheduler",
          "process"
        ])
        assert.strictEqual(health.body.backends[0].url, sim.url)
        assert.strictEqual(health.body.backends[0].reachable, true)
        assert.strictEqual(health.body.backends[0].breaker, "closed")
        assert.isString(health.body.backends[0].version)
      }).pipe(Effect.provide(yield* gateway([sim.url])))
    })
  )

  it.scopedLive("a dead backend makes /health/ready 503 and names the backends component", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const dead = `http://127.0.0.1:${port}`
      yield* Effect.gen(function* () {
        const ready = yield* get("/health/ready")
        assert.strictEqual(ready.status, 503)
        assert.strictEqual(ready.body.status, "not ready")
        assert.deepStrictEqual(
          ready.body.failing.map((f: { name: string }) => f.name),
          ["backends"]
        )
        assert.include(ready.body.failing[0].reason, dead)
        const health = yield* get("/health")
        assert.strictEqual(health.status, 503)
        assert.strictEqual(health.body.components.backends.status, "down")
        assert.strictEqual(health.body.backends[0].reachable, false)
        assert.strictEqual((yield* get("/health/live")).status, 200, "alive: restarting would not help")
      }).pipe(Effect.provide(yield* gateway([dead])))
    })
  )

  it.scopedLive("one of two backends dead: degraded but ready", () =>
    Effect.gen(function* () {
      const sim = yield* simulator
      const port = yield* closedPort
      yield* Effect.gen(function* () {
        assert.strictEqual((yield* get("/health/ready")).status, 200)
        const health = yield* get("/health")
        assert.strictEqual(health.body.status, "degraded")
        assert.strictEqual(health.body.components.backends.status, "degraded")
      }).pipe(Effect.provide(yield* gateway([sim.url, `http://127.0.0.1:${port}`])))
    })
  )

  it.scopedLive("a required model no backend serves makes Sluice not ready", () =>
    Effect.gen(function* () {
      const sim = yield* simulator
      const requirements = { chatModels: ["llama3.2"], embedModels: ["no-such-embedder"] }
      yield* Effect.gen(function* () {
        const ready = yield* get("/health/ready")
        assert.strictEqual(ready.status, 503)
        assert.include(ready.body.failing[0].reason, "no-such-embedder:latest")
        assert.notInclude(ready.body.failing[0].reason, "llama3.2")
      }).pipe(Effect.provide(yield* gateway([sim.url], { requirements })))
    })
  )

  it.scopedLive("the database component reads and writes when the process has a database", () =>
    Effect.gen(function* () {
      const sim = yield* simulator
      const layer = serve(
        HealthRoutes.layer().pipe(Layer.provideMerge(engineOver([sim.url])), Layer.provide(Store.layerMemory))
      )
      yield* Effect.gen(function* () {
        const health = yield* get("/health")
        const detail = { enabled: true, kind: "sqlite", read: true, write: true }
        assert.deepStrictEqual(health.body.components.database.detail, detail)
      }).pipe(Effect.provide(yield* Layer.build(layer)))
    })
  )

  it.scopedLive("/health answers while a check hangs; the check is down 'timed out'", () =>
    Effect.gen(function* () {
      const stuck = yield* hanging("stuck", false)
      const health = Health.Default([ok("backends"), stuck], { timeout: "100 millis", interval: "50 millis" })
      yield* Effect.gen(function* () {
        // rounds keep starting and hanging; every request still answers from the last results
        for (let i = 0; i < 5; i++) {
          const response = yield* get("/health")
          assert.strictEqual(response.status, 200)
          assert.strictEqual(response.body.components.stuck.status, "down")
          assert.include(response.body.components.stuck.detail.reason, "timed out")
          yield* Effect.sleep("30 millis")
        }
      }).pipe(Effect.provide(yield* Layer.build(serve(health))))
    })
  )

  it.scopedLive("shutting down: /health/live and /health/ready answer 503 at once", () =>
    Effect.gen(function* () {
      const sim = yield* simulator
      yield* Effect.gen(function* () {
        assert.strictEqual((yield* get("/health/live")).status, 200)
        yield* Effect.flatMap(Health, (h) => h.markShuttingDown)
        const live = yield* get("/health/live")
        assert.strictEqual(live.status, 503)
        const ready = yield* get("/health/ready")
        assert.strictEqual(ready.status, 503)
        assert.strictEqual(ready.body.status, "shutting down")
      }).pipe(Effect.provide(yield* gateway([sim.url])))
    })
  )
})
