/** Tallies of limiter decisions for tests: "admitted", or the limit that refused (any error with a `limit`). */
import { Effect, Either, Predicate } from "effect"

/** "admitted", the refusing error's `limit` ("requests", "tokens", "concurrency"), or the error as text. */
export const outcome = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<string> =>
  Effect.map(Effect.either(effect), (r) =>
    Either.isRight(r)
      ? "admitted"
      : Predicate.hasProperty(r.left, "limit") && typeof r.left.limit === "string"
        ? r.left.limit
        : String(r.left)
  )

/** How many times each outcome occurs. */
export const tally = (outcomes: ReadonlyArray<string>): Record<string, number> =>
  outcomes.reduce<Record<string, number>>((t, o) => ({ ...t, [o]: (t[o] ?? 0) + 1 }), {})
