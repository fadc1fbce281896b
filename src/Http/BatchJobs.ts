/**
 * Batches submitted through the gateway (`POST /batches`): each runs in a background fiber through `Llm` at the
 * "batch" priority with bounded concurrency (`SLUICE_BATCH_CONCURRENCY`, default 4), job by job as
 * `sluice batch` runs them (Llm/BatchJob.ts), and its result lines are kept for `GET /batches/:id/results`.
 *
 * Choices:
 * - Batches live in memory only: a restart loses the unfinished ones (the CLI `sluice batch` is the resumable
 *   path). The newest `keep` finished batches are kept (default 100); older finished ones are forgotten.
 * - The fibers are owned by this scoped service (a FiberMap keyed by batch id): shutdown interrupts them and the
 *   batch ends "cancelled", like `cancel`.
 */
import { Clock, Config, Effect, FiberMap, Option } from "effect"
import { type Result, resultOfValue } from "../Llm/BatchJob.js"
import { Llm } from "../Llm/Llm.js"

export type BatchStatus = "running" | "completed" | "cancelled"

/** What `GET /batches/:id` answers. */
export interface Progress {
  readonly id: string
  readonly total: number
  readonly done: number
  readonly succeeded: number
  readonly failed: number
  readonly status: BatchStatus
  readonly createdAt: number
}

interface Batch {
  progress: Progress
  readonly results: Array<Result>
}

/** The defaults, in one place. */
export const defaults = { concurrency: 4, keep: 100 } as const

export class BatchJobs extends Effect.Service<BatchJobs>()("sluice/BatchJobs", {
  scoped: Effect.gen(function* () {
    const llm = yield* Llm
    const concurrency = yield* Config.integer("SLUICE_BATCH_CONCURRENCY").pipe(Config.withDefault(defaults.concurrency))
    const batches = new Map<string, Batch>()
    const fibers = yield* FiberMap.make<string>()

    const update = (batch: Batch, change: Partial<Progress>) => {
      batch.progress = { ...batch.progress, ...change }
    }

    const record = (batch: Batch) => (result: Result) =>
      Effect.sync(() => {
        batch.results.push(result)
        const { done, succeeded, failed } = batch.progress
        update(batch, {
          done: done + 1,
          succeeded: succeeded + (result.ok ? 1 : 0),
          failed: failed + (result.ok ? 0 : 1)
        })
      })

    /** Forgets the oldest finished batches beyond `keep`. */
    const prune = Effect.sync(() => {
      const finished = [...batches.values()].filter((b) => b.progress.status !== "running")
      for (const b of finished.slice(0, Math.max(0, finished.length - defaults.keep))) batches.delete(b.progress.id)
    })

    const work = (batch: Batch, jobs: ReadonlyArray<unknown>) =>
      Effect.forEach(jobs, (job, i) => Effect.flatMap(resultOfValue(llm, job, `job-${i + 1}`), record(batch)), {
        concurrency,
        discard: true
      }).pipe(
        Effect.zipRight(Effect.sync(() => update(batch, { status: "completed" }))),
        Effect.onInterrupt(() => Effect.sync(() => update(batch, { status: "cancelled" }))),
        Effect.zipRight(prune),
        Effect.annotateLogs({ batch: batch.progress.id })
      )

    /** Starts a batch in the background; answers its progress at the start. */
    const submit = Effect.fn("BatchJobs.submit")(function* (jobs: ReadonlyArray<unknown>) {
      const id = crypto.randomUUID()
      const createdAt = yield* Clock.currentTimeMillis
      const progress: Progress = {
        id,
        total: jobs.length,
        done: 0,
        succeeded: 0,
        failed: 0,
        status: "running",
        createdAt
      }
      const batch: Batch = { progress, results: [] }
      batches.set(id, batch)
      yield* FiberMap.run(fibers, id, work(batch, jobs))
      return progress
    })

    /** Interrupts a running batch; its finished results stay. */
    const cancel = Effect.fn("BatchJobs.cancel")(function* (id: string) {
      const batch = batches.get(id)
      if (batch === undefined) return Option.none<Progress>()
      yield* FiberMap.remove(fibers, id)
      return Option.some(batch.progress)
    })

    return {
      submit,
      cancel,
      /** The progress of a batch, if it is known. */
      progress: (id: string): Option.Option<Progress> =>
        Option.map(Option.fromNullable(batches.get(id)), (b) => b.progress),
      /** The result lines so far, in the order the jobs ended. */
      results: (id: string): Option.Option<ReadonlyArray<Result>> =>
        Option.map(Option.fromNullable(batches.get(id)), (b) => [...b.results])
    } as const
  })
}) {}
