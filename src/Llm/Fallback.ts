/**
 * The error boundary: when a call has failed for good (after retries and every backend), an ordered list of
 * strategies decides what the caller gets instead of the error.
 *
 * - `alternate`: the same request on another model (runs the whole pipeline again, without fallbacks);
 * - `stale`: the last cached answer for the request, even if expired, marked stale;
 * - `default`: a configured reply text;
 * - when every strategy fails or none is configured, the typed error of the primary.
 *
 * A fallback is only tried for failures a different answer can mend (the error's `mendable`, Domain/LlmError.ts):
 * the backend is unwell, the model is missing, the breaker is open, a limit was hit. A bad request, a spent budget
 * and a shutdown are the caller's own answer and pass through unchanged.
 */
import { Effect, Option, Stream } from "effect"
import type { LlmError } from "../Domain/LlmError.js"

export type Strategy =
  | { readonly _tag: "alternate"; readonly model: string }
  | { readonly _tag: "stale" }
  | { readonly _tag: "default"; readonly content: string }

export const alternate = (model: string): Strategy => ({ _tag: "alternate", model })
export const stale: Strategy = { _tag: "stale" }
export const reply = (content: string): Strategy => ({ _tag: "default", content })

/** Which path produced the answer. */
export type Served = "primary" | "stale" | "default" | `alternate:${string}`

/** How to carry out each strategy for one call. */
export interface Handlers<A, E> {
  readonly alternate: (model: string) => Effect.Effect<A, E>
  readonly stale: Effect.Effect<Option.Option<A>>
  readonly reply: (content: string) => A
}

const attempt = <A, E>(strategy: Strategy, handlers: Handlers<A, E>): Effect.Effect<Option.Option<[A, Served]>> => {
  switch (strategy._tag) {
    case "alternate":
      return handlers.alternate(strategy.model).pipe(
        Effect.map((a): Option.Option<[A, Served]> => Option.some([a, `alternate:${strategy.model}`])),
        Effect.orElseSucceed(() => Option.none())
      )
    case "stale":
      return Effect.map(
        handlers.stale,
        Option.map((a): [A, Served] => [a, "stale"])
      )
    case "default":
      return Effect.succeed(Option.some([handlers.reply(strategy.content), "default"]))
  }
}

/** Runs `primary`; on a mendable failure, tries `strategies` in order, else fails with the primary's error. */
export const run = <A, E extends LlmError, R>(
  primary: Effect.Effect<A, E, R>,
  strategies: ReadonlyArray<Strategy>,
  handlers: Handlers<A, E>
): Effect.Effect<{ readonly value: A; readonly served: Served }, E, R> => {
  const from = (index: number, error: E): Effect.Effect<{ readonly value: A; readonly served: Served }, E> => {
    const strategy = strategies[index]
    if (strategy === undefined) return Effect.fail(error)
    return Effect.flatMap(
      attempt(strategy, handlers),
      Option.match({
        onNone: () => from(index + 1, error),
        onSome: ([value, served]) => Effect.succeed({ value, served })
      })
    )
  }
  return primary.pipe(
    Effect.map((value) => ({ value, served: "primary" as Served })),
    Effect.catchAll((error) => (error.mendable ? from(0, error) : Effect.fail(error)))
  )
}

/** How to carry out each strategy for one streamed call. */
export interface StreamHandlers<A, E> {
  readonly alternate: (model: string) => Stream.Stream<A, E>
  readonly stale: Effect.Effect<Option.Option<ReadonlyArray<A>>>
  readonly reply: (content: string) => ReadonlyArray<A>
}

/** `stream`, but a failure before its first chunk is handed to `orElse` (after a chunk, it propagates). */
export const beforeFirstChunk =
  <E, A2, E2, R2>(orElse: (error: E) => Stream.Stream<A2, E2, R2>) =>
  <A, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A | A2, E | E2, R | R2> =>
    Stream.suspend(() => {
      let emitted = false
      return stream.pipe(
        Stream.tap(() => Effect.sync(() => (emitted = true))),
        Stream.catchAll((error): Stream.Stream<A2, E | E2, R2> => (emitted ? Stream.fail(error) : orElse(error)))
      )
    })

/**
 * The streaming error boundary: a stream that fails before its first chunk reached the caller is replaced by
 * the first strategy that works; once a chunk went out, a failure reaches the caller as it is.
 */
export const runStream = <A, E extends LlmError, R>(
  primary: Stream.Stream<A, E, R>,
  strategies: ReadonlyArray<Strategy>,
  handlers: StreamHandlers<A, E>,
  onServed: (served: Served) => Effect.Effect<void> = () => Effect.void
): Stream.Stream<A, E, R> => {
  const from = (index: number, error: E): Stream.Stream<A, E> => {
    const strategy = strategies[index]
    if (strategy === undefined) return Stream.fail(error)
    const served =
      (s: Served) =>
      <X>(stream: Stream.Stream<X, E>) =>
        Stream.concat(stream, Stream.execute(onServed(s)))
    switch (strategy._tag) {
      case "alternate":
        return handlers.alternate(strategy.model).pipe(
          served(`alternate:${strategy.model}`),
          beforeFirstChunk(() => from(index + 1, error))
        )
      case "stale":
        return Stream.unwrap(
          Effect.map(
            handlers.stale,
            Option.match({
              onNone: () => from(index + 1, error),
              onSome: (chunks) => Stream.fromIterable(chunks).pipe(served("stale"))
            })
          )
        )
      case "default":
        return Stream.fromIterable(handlers.reply(strategy.content)).pipe(served("default"))
    }
  }
  return primary.pipe(beforeFirstChunk((error) => (error.mendable ? from(0, error) : Stream.fail(error))))
}
