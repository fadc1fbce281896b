/**
 * A batch processor for users' own workloads: items submitted one at a time, from any fiber, are handed to a
 * `process` function in batches, and each submitter gets its own result back.
 *
 * Choices:
 * - The queue is an STM `TPriorityQueue` ordered by priority class, then arrival, bounded by `capacity`. A plain
 *   `Queue` is FIFO only; priorities under one total capacity need a queue that a transaction can both bound
 *   (admit, wait for room, or refuse with QueueFull) and take the most urgent items from.
 * - One dispatcher fiber takes a worker permit (`concurrency`, default 1), waits for an item, then until
 *   `batchSize` items are queued or the oldest queued item has waited `window`, and takes up to `batchSize`
 *   items, most urgent first. Items stay queued while every worker is busy, so a later urgent item still goes
 *   first, and the capacity counts them.
 * - Every member of a batch is completed: a failure or defect of `process` is every member's; a result array of
 *   the wrong length fails them all with `BatchMismatch` (typed, no defect). One span per batch.
 * - A submitter interrupted before its item is dispatched takes the item out of the queue; after that, the item
 *   is processed and its result dropped.
 * - Everything runs in the Scope of `make`. Closing it refuses new items, interrupts queued and waiting
 *   submitters, the dispatcher and the batches in flight (their submitters are interrupted too).
 */
import type { Scope } from "effect"
import {
  Clock,
  Data,
  Duration,
  Deferred,
  Effect,
  Exit,
  FiberSet,
  Option,
  Order,
  Ref,
  STM,
  TPriorityQueue,
  TRef
} from "effect"
import { QueueFull } from "../Domain/LlmError.js"
import type { Priority } from "./Llm.js"

export type { Priority } from "./Llm.js"

/** `process` answered with a different number of results than it was given items. */
export class BatchMismatch extends Data.TaggedError("BatchMismatch")<{
  readonly expected: number
  readonly actual: number
}> {
  override get message() {
    return `the batch process returned ${this.actual} results for ${this.expected} items (one per item, in order)`
  }
}

export interface Options<A, B, E, R> {
  /** One result per item, in the same order. */
  readonly process: (items: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<B>, E, R>
  readonly batchSize: number
  /** How long the first item of a batch waits for company. */
  readonly window: Duration.DurationInput
  /** Queued items at most. */
  readonly capacity: number
  /** Batches processed at once (default 1). */
  readonly concurrency?: number
  /** When full: `submit` waits for room (default) or fails at once with QueueFull. */
  readonly overflow?: "backpressure" | "reject"
}

export interface Stats {
  /** Items waiting for a batch now. */
  readonly queued: number
  /** Batches finished (success or failure). */
  readonly batches: number
  /** Items in those batches. */
  readonly processed: number
  /** Submissions refused with QueueFull. */
  readonly rejected: number
}

export interface BatchProcessor<A, B, E> {
  /** Queues one item (default priority "normal") and waits for its result. */
  readonly submit: (item: A, priority?: Priority) => Effect.Effect<B, E | QueueFull>
  /** Queues every item and waits for all results, in order; the first failure fails the whole call. */
  readonly submitAll: (items: Iterable<A>, priority?: Priority) => Effect.Effect<ReadonlyArray<B>, E | QueueFull>
  readonly stats: Effect.Effect<Stats>
}

interface Entry<A, B, E> {
  readonly item: A
  readonly rank: number
  readonly seq: number
  readonly at: number
  readonly deferred: Deferred.Deferred<B, E>
}

const ranks: Record<Priority, number> = { interactive: 0, normal: 1, batch: 2 }

const entryOrder: Order.Order<Entry<any, any, any>> = Order.combine(
  Order.mapInput(Order.number, (e: Entry<any, any, any>) => e.rank),
  Order.mapInput(Order.number, (e: Entry<any, any, any>) => e.seq)
)

/** Completes every member of a batch from the batch's outcome. */
const complete = <A, B, E>(batch: ReadonlyArray<Entry<A, B, E>>, exit: Exit.Exit<ReadonlyArray<B>, E>) =>
  Exit.isFailure(exit)
    ? Effect.forEach(batch, (e) => Deferred.failCause(e.deferred, exit.cause), { discard: true })
    : Effect.forEach(batch, (e, i) => Deferred.succeed(e.deferred, exit.value[i]!), { discard: true })

/** Builds a processor whose dispatcher and batches live in the current Scope. */
export const make = <A, B, E, R>(
  options: Options<A, B, E, R>
): Effect.Effect<BatchProcessor<A, B, E | BatchMismatch>, never, Scope.Scope | R> =>
  Effect.gen(function* () {
    type Item = Entry<A, B, E | BatchMismatch>
    const batchSize = Math.max(1, options.batchSize)
    const capacity = Math.max(1, options.capacity)
    const windowMs = Duration.toMillis(Duration.decode(options.window))
    const queue = yield* STM.commit(TPriorityQueue.empty<Item>(entryOrder))
    const closed = yield* STM.commit(TRef.make(false))
    const stats = yield* Ref.make({ batches: 0, processed: 0, rejected: 0 })
    const permits = yield* Effect.makeSemaphore(Math.max(1, options.concurrency ?? 1))
    const running = yield* FiberSet.make<void, never>()
    let seq = 0

    /** Admits an entry: false when closed; waits or fails with QueueFull when full. */
    const admit = (entry: Item): STM.STM<boolean, QueueFull> =>
      STM.gen(function* () {
        if (yield* TRef.get(closed)) return false
        if ((yield* TPriorityQueue.size(queue)) >= capacity) {
          if (options.overflow !== "reject") return yield* STM.retry
          return yield* STM.fail(new QueueFull({ capacity, retryAfterMs: windowMs }))
        }
        yield* TPriorityQueue.offer(queue, entry)
        return true
      })

    const submit = (item: A, priority: Priority = "normal"): Effect.Effect<B, E | BatchMismatch | QueueFull> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          const deferred = yield* Deferred.make<B, E | BatchMismatch>()
          const entry: Item = { item, rank: ranks[priority], seq: seq++, at: yield* Clock.currentTimeMillis, deferred }
          const admitted = yield* restore(STM.commit(admit(entry))).pipe(
            Effect.tapError(() => Ref.update(stats, (s) => ({ ...s, rejected: s.rejected + 1 })))
          )
          if (!admitted) return yield* Effect.interrupt
          return yield* restore(Deferred.await(deferred)).pipe(
            Effect.onInterrupt(() => STM.commit(TPriorityQueue.removeIf(queue, (e) => e === entry)))
          )
        })
      )

    /** The arrival time of the oldest queued item; retries while the queue is empty. */
    const oldest: STM.STM<number> = STM.flatMap(TPriorityQueue.toArray(queue), (entries) =>
      entries.length === 0 ? STM.retry : STM.succeed(Math.min(...entries.map((e) => e.at)))
    )
    const full: STM.STM<void> = STM.flatMap(TPriorityQueue.size(queue), (n) => STM.check(() => n >= batchSize))

    /** Waits until a batch is due: `batchSize` items queued, or the oldest one has waited `window`. */
    const awaitBatch: Effect.Effect<void> = Effect.gen(function* () {
      const wait = (yield* STM.commit(oldest)) + windowMs - (yield* Clock.currentTimeMillis)
      if (wait <= 0) return
      const filled = yield* Effect.timeoutOption(STM.commit(full), Duration.millis(wait))
      if (Option.isNone(filled)) return yield* awaitBatch
    })

    const runBatch = (batch: ReadonlyArray<Item>) =>
      options.process(batch.map((e) => e.item)).pipe(
        Effect.filterOrFail(
          (results) => results.length === batch.length,
          (results) => new BatchMismatch({ expected: batch.length, actual: results.length })
        ),
        Effect.exit,
        Effect.flatMap((exit) => complete(batch, exit)),
        Effect.onInterrupt(() => Effect.forEach(batch, (e) => Deferred.interrupt(e.deferred), { discard: true })),
        Effect.ensuring(
          Ref.update(stats, (s) => ({ ...s, batches: s.batches + 1, processed: s.processed + batch.length }))
        ),
        Effect.withSpan("BatchProcessor.batch", { attributes: { size: batch.length } }),
        Effect.ensuring(permits.release(1))
      )

    /** Takes a batch and hands it to a worker fiber in one uninterruptible step, so no entry is lost. */
    const dispatch = Effect.uninterruptible(
      Effect.flatMap(STM.commit(TPriorityQueue.takeUpTo(queue, batchSize)), (batch) =>
        batch.length === 0
          ? permits.release(1)
          : Effect.asVoid(FiberSet.run(running, Effect.interruptible(runBatch(batch))))
      )
    )

    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(permits.take(1), Effect.zipRight(awaitBatch, dispatch))))
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(STM.commit(STM.zipRight(TRef.set(closed, true), TPriorityQueue.takeAll(queue))), (queued) =>
        Effect.forEach(queued, (e) => Deferred.interrupt(e.deferred), { discard: true })
      )
    )

    return {
      submit,
      submitAll: (items, priority) =>
        Effect.forEach(items, (item) => submit(item, priority), { concurrency: "unbounded" }),
      stats: Effect.map(Effect.zip(STM.commit(TPriorityQueue.size(queue)), Ref.get(stats)), ([queued, s]) => ({
        queued,
        ...s
      }))
    } as const
  })
