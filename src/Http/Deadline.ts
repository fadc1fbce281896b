/**
 * The drain deadline for the gateway's unary handlers: a call still running when the deadline passes ends its
 * request, which is answered 503 `ShuttingDown` (with `Retry-After: 5`) in its family's error shape by the drain
 * middleware (DrainMiddleware.ts), like a refused request.
 *
 * Choices:
 * - The request's own fiber is interrupted at the deadline, not the call in a child fiber of its own: a fork per
 *   unary request (a fiber, its fiber refs copied, an observer, a race) was 39 of the ~410 runtime steps of a gateway
 *   `/api/chat` (bench/gateway-steps.ts). Nothing is lost by it: the handler has nothing left to do but answer, and
 *   the server answers an interrupted handler with an empty 503, which the drain middleware turns into the
 *   `ShuttingDown` body when the deadline has passed. The interruption reaches the call wherever it runs
 *   interruptibly, as an interruption of the child did (the call's finalizers run: slot, upstream request).
 * - One watcher fiber per server (`layer`) waits on the deadline and calls the callbacks of the calls in flight,
 *   each registered for the time of its call.
 * - The callbacks are held in an array with a free list of indexes, not a `Set`: a callback holds its request's
 *   fiber, and entries added to and deleted from a long-lived `Set` or `Map` keep whole requests alive through V8's
 *   young-generation collections (10 lines of plain Node reproduce it: a `Set` churning closures over 150 KB graphs
 *   kept 30-40 MB alive per scavenge, an array with a free list 9 MB, the same as holding nothing). In the gateway
 *   at 500 req/s this took what reaches the old generation per scavenge from ~2.9 to ~2.2 MB, so full collections
 *   come less often (docs/performance.md, "The gateway's tail"). A cleared array slot holds nothing.
 * - Once the deadline passed, a call is not started at all: it fails with `ShuttingDown`.
 * - Without the watcher (routes served outside `Server.layer`, or no Drain) it falls back to
 *   `Shutdown.untilDeadline` (a race: the call fails with `ShuttingDown`), answered the same way by the route.
 */
import { Context, Deferred, Effect, Layer, Option } from "effect"
import { ShuttingDown } from "../Domain/LlmError.js"
import * as Shutdown from "../Lifecycle/Shutdown.js"

/** The calls waiting on one drain's deadline, and whether it passed. */
interface Watch {
  passed: boolean
  /** Each running call's callback at its index, `undefined` where free (see the choices above). */
  readonly waiting: Array<(() => void) | undefined>
  /** The free indexes of `waiting`. */
  readonly free: Array<number>
}

const watches = new WeakMap<Shutdown.Service, Watch>()

/** Watches the drain's deadline for the server's lifetime, so `untilDeadline` needs no fiber of its own to wait. */
export const layer: Layer.Layer<never, never, Shutdown.Drain> = Layer.scopedDiscard(
  Effect.flatMap(Shutdown.Drain, (drain) => {
    const watch: Watch = { passed: false, waiting: [], free: [] }
    watches.set(drain, watch)
    const fire = Effect.sync(() => {
      watch.passed = true
      const callbacks = watch.waiting.splice(0)
      watch.free.length = 0
      for (const callback of callbacks) callback?.()
    })
    return Effect.forkScoped(Effect.zipRight(Deferred.await(drain.deadline), fire))
  })
)

/**
 * Ends the request running `effect` when the drain deadline passes while `effect` runs (its fiber is interrupted:
 * see the module comment); fails with `ShuttingDown` without starting it once the deadline passed; `effect`
 * unchanged without a Drain.
 */
export const untilDeadline = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | ShuttingDown, R> =>
  Effect.withFiberRuntime((fiber) => {
    const drain = Context.getOption(fiber.currentContext, Shutdown.Drain)
    if (Option.isNone(drain)) return effect
    const watch = watches.get(drain.value)
    if (watch === undefined) return Shutdown.untilDeadline(effect)
    if (watch.passed) return Effect.fail(new ShuttingDown())
    const index = watch.free.pop() ?? watch.waiting.length
    watch.waiting[index] = () => fiber.unsafeInterruptAsFork(fiber.id())
    return Effect.ensuring(
      effect,
      Effect.sync(() => {
        if (watch.passed) return
        watch.waiting[index] = undefined
        watch.free.push(index)
      })
    )
  })
