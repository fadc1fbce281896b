/**
 * Budgets: limits on engine calls, model tokens and wall time for a scope of work (an agent episode, one tick,
 * an API key's request). A budget scope lives in the Effect context, so any engine call made inside it, in any
 * fiber forked inside it, counts against it without passing anything around.
 *
 * Choices:
 * - The active budgets are a `FiberRef` holding the chain, innermost first. `scoped` pushes one for the effect it
 *   wraps; forks inherit the chain; a join never merges a child's chain into its parent (budgets are lexical).
 * - `reserveCall` runs before a call. One STM transaction checks every budget of the chain and then counts the
 *   call in each, so concurrent calls can never overshoot `calls`; the innermost budget that has run out names
 *   itself in `BudgetExceeded`. The engine may `refundCall` a call that never reached a backend.
 * - Tokens are only known when a call ends: `charge` adds them to every budget of the chain afterwards, and a
 *   call is refused once a budget's tokens are >= its limit. So the last admitted call may overshoot the token
 *   limit by its own size.
 * - Time runs from the moment the scope starts, read from `Clock`. `reserveCall` refuses once it is up, and the
 *   work inside a scope with a time limit is interrupted when it runs out, failing with `BudgetExceeded` "time".
 * - A cache hit costs nothing: the engine does not call `reserveCall`/`charge` for one.
 * - Outside any budget scope every operation is a no-op that succeeds.
 */
import { Clock, Duration, Effect, FiberRef, Option, Ref, STM, TRef } from "effect"
import { BudgetExceeded } from "../Domain/LlmError.js"

/** What a budget allows; a missing field is not limited. */
export interface Limits {
  readonly calls?: number | undefined
  readonly tokens?: number | undefined
  readonly time?: Duration.DurationInput | undefined
}

/** One active budget's consumption so far. */
export interface Usage {
  readonly name: string
  readonly calls: number
  readonly tokens: number
  readonly elapsedMs: number
  readonly limits: Limits
}

interface Used {
  readonly calls: number
  readonly tokens: number
}

interface Frame {
  readonly name: string
  readonly limits: Limits
  readonly timeMs: number | undefined
  readonly startedAt: number
  readonly used: TRef.TRef<Used>
}

/** The chain of active budgets, innermost first. */
const active = FiberRef.unsafeMake<ReadonlyArray<Frame>>([], { join: (parent) => parent })

const timeLimitOf = (limits: Limits): number | undefined => {
  if (limits.time === undefined) return undefined
  const ms = Duration.toMillis(Duration.decode(limits.time))
  return Number.isFinite(ms) ? Math.max(0, ms) : undefined
}

/** Why this budget refuses a new call, if it does. */
const refusal = (frame: Frame, used: Used, now: number): Option.Option<BudgetExceeded> => {
  const exceeded = (limit: BudgetExceeded["limit"], value: number, max: number | undefined) =>
    max !== undefined && value >= max
      ? Option.some(new BudgetExceeded({ budget: frame.name, limit, used: value, max }))
      : Option.none()
  return exceeded("calls", used.calls, frame.limits.calls).pipe(
    Option.orElse(() => exceeded("tokens", used.tokens, frame.limits.tokens)),
    Option.orElse(() => exceeded("time", now - frame.startedAt, frame.timeMs))
  )
}

const reserveIn = (chain: ReadonlyArray<Frame>, now: number): STM.STM<void, BudgetExceeded> =>
  STM.gen(function* () {
    for (const frame of chain) {
      const denied = refusal(frame, yield* TRef.get(frame.used), now)
      if (Option.isSome(denied)) return yield* STM.fail(denied.value)
    }
    yield* STM.forEach(chain, (frame) => TRef.update(frame.used, (u) => ({ ...u, calls: u.calls + 1 })), {
      discard: true
    })
  })

// the chain read in place (`withFiberRuntime`, one step, not a FiberRef.get and a flatMap): every engine call asks twice
const withChain = <A, E>(f: (chain: ReadonlyArray<Frame>) => Effect.Effect<A, E>, empty: A): Effect.Effect<A, E> =>
  Effect.withFiberRuntime((fiber) => {
    const chain = fiber.getFiberRef(active)
    return chain.length === 0 ? Effect.succeed(empty) : f(chain)
  })

const updateAll = (chain: ReadonlyArray<Frame>, f: (used: Used) => Used) =>
  STM.commit(STM.forEach(chain, (frame) => TRef.update(frame.used, f), { discard: true }))

/** `outside` when no budget is active (nothing to reserve or charge: one FiberRef read), else `inside`. */
export const whenActive = <A, E, R>(
  outside: Effect.Effect<A, E, R>,
  inside: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) => (fiber.getFiberRef(active).length === 0 ? outside : inside))

/** Checks calls, tokens and time in every active budget, then counts one call in each. */
export const reserveCall: Effect.Effect<void, BudgetExceeded> = withChain(
  (chain) => Effect.flatMap(Clock.currentTimeMillis, (now) => STM.commit(reserveIn(chain, now))),
  undefined
)

/** Whether some active budget would refuse a new call now (nothing is counted): admission skips the line then. */
export const refusesCall: Effect.Effect<boolean> = withChain(
  (chain) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      STM.commit(
        STM.map(
          STM.forEach(chain, (frame) => STM.map(TRef.get(frame.used), (used) => refusal(frame, used, now))),
          (refusals) => refusals.some(Option.isSome)
        )
      )
    ),
  false
)

/** Gives back a reserved call that never reached a backend. */
export const refundCall: Effect.Effect<void> = withChain(
  (chain) => updateAll(chain, (u) => ({ ...u, calls: Math.max(0, u.calls - 1) })),
  undefined
)

/** Adds the model tokens of a finished call (prompt + completion) to every active budget. */
export const charge = (tokens: number): Effect.Effect<void> =>
  tokens > 0
    ? withChain((chain) => updateAll(chain, (u) => ({ ...u, tokens: u.tokens + tokens })), undefined)
    : Effect.void

/** The consumption of every active budget, innermost first (empty outside any budget scope). */
export const usage: Effect.Effect<ReadonlyArray<Usage>> = withChain(
  (chain) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.forEach(chain, (frame) =>
        Effect.map(STM.commit(TRef.get(frame.used)), (used) => ({
          name: frame.name,
          ...used,
          elapsedMs: now - frame.startedAt,
          limits: frame.limits
        }))
      )
    ),
  []
)

/** `scoped`, reporting each time-out of this scope (not of nested ones) to `onTimeout`. */
export const scopedWith =
  (name: string, limits: Limits, onTimeout: (error: BudgetExceeded) => Effect.Effect<void>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BudgetExceeded, R> =>
    Effect.gen(function* () {
      const timeMs = timeLimitOf(limits)
      const frame: Frame = {
        name,
        limits,
        timeMs,
        startedAt: yield* Clock.currentTimeMillis,
        used: yield* STM.commit(TRef.make<Used>({ calls: 0, tokens: 0 }))
      }
      const inside = Effect.locallyWith(effect, active, (chain) => [frame, ...chain])
      if (timeMs === undefined) return yield* inside
      const error = new BudgetExceeded({ budget: name, limit: "time", used: timeMs, max: timeMs })
      return yield* Effect.timeoutTo(inside, {
        duration: Duration.millis(timeMs),
        onSuccess: Effect.succeed<A>,
        onTimeout: () => Effect.zipRight(onTimeout(error), Effect.fail(error))
      }).pipe(Effect.flatten)
    })

/** Runs `effect` in a new budget nested in the active ones. */
export const scoped = (
  name: string,
  limits: Limits
): (<A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BudgetExceeded, R>) =>
  scopedWith(name, limits, () => Effect.void)

/** How often a budget ran out, by limit. */
export interface Exhaustions {
  readonly calls: number
  readonly tokens: number
  readonly time: number
}

/** The budget operations as a service, with counters of exhaustion by limit. */
export class Budget extends Effect.Service<Budget>()("sluice/Budget", {
  effect: Effect.gen(function* () {
    const exhausted = yield* Ref.make<Exhaustions>({ calls: 0, tokens: 0, time: 0 })
    const count = (error: BudgetExceeded) => Ref.update(exhausted, (c) => ({ ...c, [error.limit]: c[error.limit] + 1 }))
    return {
      scoped: (name: string, limits: Limits) => scopedWith(name, limits, count),
      reserveCall: Effect.tapError(reserveCall, count),
      refundCall,
      charge,
      usage,
      stats: Ref.get(exhausted)
    } as const
  })
}) {}

/** The service on its own, for a user of the library. */
export const layer = Budget.Default
