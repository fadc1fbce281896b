import { assert, describe, layer } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { fast, mapModels } from "../../src/Simulator/SimulatorConfig.js"
import { call, layer as gateway } from "./gateway.js"

const chatJob = (i: number) => ({
  id: `job-${i}`,
  request: { model: "llama3.2", messages: [{ role: "user", content: `question number ${i}` }] }
})

/** Polls the batch until it is no longer running. */
const settled = (id: string) =>
  call(`/batches/${id}`).pipe(
    Effect.filterOrFail((a) => a.body.status !== "running"),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds")))
  )

const lines = (text: string) =>
  text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as { id: string; ok: boolean; response?: unknown; error?: { tag: string } })

describe("gateway: batches", () => {
  layer(gateway(fast()), { excludeTestServices: true })("fast simulator", (it) => {
    it.effect("a batch of 50 jobs runs to completion; every job has a result line", () =>
      Effect.gen(function* () {
        const jobs = Array.from({ length: 50 }, (_, i) => chatJob(i))
        const submitted = yield* call("/batches", { method: "POST", body: { jobs } })
        assert.strictEqual(submitted.status, 202)
        assert.strictEqual(submitted.body.total, 50)
        const done = yield* settled(submitted.body.id)
        assert.deepInclude(done.body, { status: "completed", total: 50, done: 50, succeeded: 50, failed: 0 })
        const results = yield* call(`/batches/${submitted.body.id}/results`)
        assert.strictEqual(results.status, 200)
        const got = lines(results.text)
        assert.strictEqual(got.length, 50)
        assert.sameMembers(
          got.map((r) => r.id),
          jobs.map((j) => j.id)
        )
        assert.isTrue(got.every((r) => r.ok))
      })
    )

    it.effect("an invalid job becomes a failed result, the others still run", () =>
      Effect.gen(function* () {
        const jobs = [chatJob(1), { id: "broken", kind: "chat", request: { messages: 3 } }, { kind: "nope" }]
        const submitted = yield* call("/batches", { method: "POST", body: { jobs } })
        assert.strictEqual(submitted.status, 202)
        const done = yield* settled(submitted.body.id)
        assert.deepInclude(done.body, { status: "completed", done: 3, succeeded: 1, failed: 2 })
        const got = lines((yield* call(`/batches/${submitted.body.id}/results`)).text)
        const broken = got.find((r) => r.id === "broken")
        assert.strictEqual(broken?.ok, false)
        assert.strictEqual(broken?.error?.tag, "InvalidJob")
        assert.isDefined(
          got.find((r) => r.id === "job-3" && !r.ok),
          "a job without an id is named by its position"
        )
      })
    )

    it.effect("refusals: a body without jobs, an empty batch, duplicate ids, too many jobs, an unknown batch", () =>
      Effect.gen(function* () {
        const noJobs = yield* call("/batches", { method: "POST", body: { work: [] } })
        assert.strictEqual(noJobs.status, 400)
        assert.isString(noJobs.body.error)
        assert.strictEqual((yield* call("/batches", { method: "POST", body: { jobs: [] } })).status, 400)
        const twice = yield* call("/batches", { method: "POST", body: { jobs: [chatJob(1), chatJob(1)] } })
        assert.strictEqual(twice.status, 400)
        assert.match(twice.body.error, /duplicate job id "job-1"/)
        const many = Array.from({ length: 10_001 }, () => ({}))
        assert.strictEqual((yield* call("/batches", { method: "POST", body: { jobs: many } })).status, 413)
        for (const path of ["/batches/nope", "/batches/nope/results"]) {
          const missing = yield* call(path)
          assert.strictEqual(missing.status, 404)
          assert.match(missing.body.error, /not found/)
        }
        assert.strictEqual((yield* call("/batches/nope/cancel", { method: "POST" })).status, 404)
      })
    )
  })

  const slow = mapModels(fast(), (m) => ({ ...m, outputTokenMs: 100 }))
  layer(gateway(slow), { excludeTestServices: true })("slow simulator", (it) => {
    it.effect("cancel stops a long batch; its status is cancelled", () =>
      Effect.gen(function* () {
        const jobs = Array.from({ length: 40 }, (_, i) => chatJob(i))
        const submitted = yield* call("/batches", { method: "POST", body: { jobs } })
        const id = submitted.body.id
        const cancelled = yield* call(`/batches/${id}/cancel`, { method: "POST" })
        assert.strictEqual(cancelled.status, 202)
        assert.strictEqual(cancelled.body.status, "cancelled")
        const after = yield* call(`/batches/${id}`)
        assert.strictEqual(after.body.status, "cancelled")
        assert.isBelow(after.body.done, 40)
        assert.strictEqual((yield* call(`/batches/${id}/cancel`, { method: "POST" })).status, 409)
      })
    )
  })
})
