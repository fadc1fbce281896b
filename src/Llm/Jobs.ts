/**
 * Stream operators that run a stream of jobs through an engine call (`llm.chat`, `llm.embed`, a user function)
 * with bounded concurrency, in constant memory.
 *
 * Choices:
 * - Both are thin named wrappers over `Stream.mapEffect(f, { concurrency, unordered })`: it pulls a job only when
 *   one of the `concurrency` slots is free, so a stream of a million jobs never holds more than a few dozen.
 *   Ordered (the default), at most `concurrency` jobs run and at most `concurrency` finished results wait behind
 *   a slower earlier job; unordered, results are emitted as they finish (through a buffer of 16).
 * - `run` fails the stream with the first job's failure and interrupts the jobs still running; `runEither` turns
 *   each job's failure into a `Left`, so one bad job does not stop the rest.
 */
import type { Either } from "effect"
import { Effect, Stream } from "effect"

export interface Options {
  /** Jobs running at once (at least 1). */
  readonly concurrency: number
  /** Emit results in the jobs' order (default), or as soon as each finishes. */
  readonly ordered?: boolean
}

/** Runs every job through `f`, at most `concurrency` at once; the first failure ends the stream. */
export const run =
  <A, B, E, R>(f: (job: A) => Effect.Effect<B, E, R>, options: Options) =>
  <E2, R2>(jobs: Stream.Stream<A, E2, R2>): Stream.Stream<B, E | E2, R | R2> =>
    Stream.mapEffect(jobs, f, {
      concurrency: Math.max(1, Math.floor(options.concurrency)),
      unordered: options.ordered === false
    })

/** Like `run`, but each result is an Either: a failed job is a `Left` and the stream goes on. */
export const runEither =
  <A, B, E, R>(f: (job: A) => Effect.Effect<B, E, R>, options: Options) =>
  <E2, R2>(jobs: Stream.Stream<A, E2, R2>): Stream.Stream<Either.Either<B, E>, E2, R | R2> =>
    run((job: A) => Effect.either(f(job)), options)(jobs)
