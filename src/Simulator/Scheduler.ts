/**
 * The simulator's scheduler, modelled on Ollama's server/sched.go:
 *
 * - A request for a loaded model goes straight to that model's `numParallel` slots (an Effect Semaphore) and
 *   waits there with no limit (ollama#7758) — unless `strictQueue` is on, in which case requests waiting for
 *   a slot count against `maxQueue` too, so overload shows up as 503.
 * - A request for a model that is not loaded enters the scheduling queue (capacity `maxQueue`; full -> the
 *   caller answers 503). One worker fiber takes the queue in order and loads one model at a time (`loadMs`).
 * - At most `maxLoadedModels` models are resident; a load evicts the least recently used idle model, or
 *   waits until one becomes idle.
 * - A model unloads `keep_alive` after its last request finished (0: right away; negative: never). Expiry is
 *   computed lazily whenever the scheduler is used (requests, /api/ps, stats).
 *
 * Leases live in the request's Scope: the slot and the model's in-flight count are released when the
 * response has been written or the handler fiber is interrupted (client disconnect), whichever comes first.
 * State is plain mutable data; every change happens synchronously between yields on the one JS thread.
 */
import type { Scope } from "effect"
import { Data, Deferred, Effect, Exit, FiberId, Queue } from "effect"
import type { ModelConfig, SimulatorConfig } from "./SimulatorConfig.js"
import { normalizeName } from "./SimulatorConfig.js"
import type { Stats } from "./Stats.js"

/** The scheduling queue is full (the caller answers 503 server busy). */
export class ServerBusy extends Data.TaggedError("ServerBusy")<{}> {}

interface ModelState {
  readonly key: string
  readonly config: ModelConfig
  readonly slots: Effect.Semaphore
  status: "unloaded" | "loading" | "loaded"
  active: number
  lastUsed: number
  keepAliveMs: number
  expiresAt: number
  unloadWhenIdle: boolean
}

interface Job {
  readonly state: ModelState
  readonly start: number
  readonly keepAliveMs: number
  readonly done: Deferred.Deferred<number>
  cancelled: boolean
  granted: boolean
}

/** A loaded model as `/api/ps` shows it; `expiresAt` is epoch ms (Infinity: never). */
export interface Running {
  readonly config: ModelConfig
  readonly expiresAt: number
}

export interface Scheduler {
  /** Reserves the model (loading it if needed) and one of its slots until the Scope closes; yields load ns. */
  readonly acquire: (model: ModelConfig, keepAliveMs: number) => Effect.Effect<number, ServerBusy, Scope.Scope>
  /** Loads the model if needed, without taking a slot (the empty-prompt "load" request); yields load ns. */
  readonly warm: (model: ModelConfig, keepAliveMs: number) => Effect.Effect<number, ServerBusy>
  /** Unloads the model now, or as soon as its in-flight requests finish. */
  readonly unload: (name: string) => Effect.Effect<void>
  readonly running: Effect.Effect<Array<Running>>
}

interface Sched {
  readonly config: SimulatorConfig
  readonly stats: Stats
  readonly queue: Queue.Queue<Job>
  readonly states: Map<string, ModelState>
  pending: number
  waitingForSlot: number
  idle: Deferred.Deferred<void>
}

const nsSince = (start: number): number => Math.max(1, Math.round((performance.now() - start) * 1e6))

const stateOf = (s: Sched, config: ModelConfig): ModelState => {
  const key = normalizeName(config.name)
  const existing = s.states.get(key)
  if (existing !== undefined && (existing.config === config || existing.active > 0)) return existing
  const slots = Effect.unsafeMakeSemaphore(Math.max(1, config.numParallel))
  const state: ModelState = {
    ...{ key, config, slots, status: "unloaded", active: 0 },
    ...{ lastUsed: 0, keepAliveMs: 0, expiresAt: 0, unloadWhenIdle: false }
  }
  s.states.set(key, state)
  return state
}

const unloadState = (s: Sched, state: ModelState): void => {
  if (state.status === "unloaded") return
  state.status = "unloaded"
  state.unloadWhenIdle = false
  s.stats.unloads++
}

const sweep = (s: Sched): void => {
  const now = Date.now()
  for (const state of s.states.values()) {
    if (state.status === "loaded" && state.active === 0 && state.expiresAt <= now) unloadState(s, state)
  }
}

const signalIdle = (s: Sched): void => {
  const idle = s.idle
  s.idle = Deferred.unsafeMake<void>(FiberId.none)
  Deferred.unsafeDone(idle, Exit.void)
}

const releaseActive = (s: Sched, state: ModelState, keepAliveMs: number): void => {
  state.active--
  const now = Date.now()
  state.lastUsed = now
  state.keepAliveMs = keepAliveMs
  state.expiresAt = now + keepAliveMs
  if (state.active > 0) return
  if (keepAliveMs <= 0 || state.unloadWhenIdle) unloadState(s, state)
  signalIdle(s)
}

const busy = (s: Sched): boolean =>
  s.pending + (s.config.strictQueue ? s.waitingForSlot : 0) >= Math.max(1, s.config.maxQueue)

const cancel = (s: Sched, job: Job): void => {
  job.cancelled = true
  if (job.granted) releaseActive(s, job.state, job.keepAliveMs)
}

/** Counts the model as in use: at once when loaded, else after the queue worker has loaded it. */
const grant = (s: Sched, state: ModelState, keepAliveMs: number): Effect.Effect<number, ServerBusy> =>
  Effect.suspend(() => {
    const start = performance.now()
    sweep(s)
    if (state.status === "loaded") {
      if (s.config.strictQueue && busy(s)) return Effect.fail(new ServerBusy())
      state.active++
      return Effect.succeed(nsSince(start))
    }
    if (busy(s)) return Effect.fail(new ServerBusy())
    const done = Deferred.unsafeMake<number>(FiberId.none)
    const job: Job = { state, start, keepAliveMs, done, cancelled: false, granted: false }
    s.pending++
    s.stats.queueChanged(s.pending)
    Queue.unsafeOffer(s.queue, job)
    return Effect.onInterrupt(Deferred.await(done), () => Effect.sync(() => cancel(s, job)))
  })

const takeSlot = (
  s: Sched,
  state: ModelState,
  restore: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
) =>
  Effect.suspend(() => {
    const stats = s.stats.model(state.key)
    stats.waiting++
    s.waitingForSlot++
    return restore(state.slots.take(1)).pipe(
      Effect.ensuring(Effect.sync(() => (stats.waiting--, s.waitingForSlot--))),
      Effect.zipRight(Effect.sync(() => s.stats.slotTaken(state.key))),
      Effect.zipRight(
        Effect.addFinalizer(() =>
          Effect.zipRight(
            Effect.sync(() => stats.inFlight--),
            state.slots.release(1)
          )
        )
      )
    )
  })

const acquire = (s: Sched, config: ModelConfig, keepAliveMs: number) =>
  Effect.uninterruptibleMask((restore) => {
    const state = stateOf(s, config)
    return restore(grant(s, state, keepAliveMs)).pipe(
      Effect.tap(() => Effect.addFinalizer(() => Effect.sync(() => releaseActive(s, state, keepAliveMs)))),
      Effect.tap(() => takeSlot(s, state, restore))
    )
  })

const residents = (s: Sched): number => {
  let n = 0
  for (const state of s.states.values()) if (state.status !== "unloaded") n++
  return n
}

const leastRecentlyUsedIdle = (s: Sched): ModelState | undefined => {
  let victim: ModelState | undefined
  for (const state of s.states.values()) {
    if (state.status !== "loaded" || state.active > 0) continue
    if (victim === undefined || state.lastUsed < victim.lastUsed) victim = state
  }
  return victim
}

const makeRoom = (s: Sched): Effect.Effect<void> =>
  Effect.suspend(() => {
    sweep(s)
    if (residents(s) < Math.max(1, s.config.maxLoadedModels)) return Effect.void
    const victim = leastRecentlyUsedIdle(s)
    if (victim !== undefined) return Effect.sync(() => unloadState(s, victim))
    return Effect.zipRight(Deferred.await(s.idle), makeRoom(s))
  })

const load = (s: Sched, job: Job) =>
  Effect.gen(function* () {
    const state = job.state
    yield* makeRoom(s)
    state.status = "loading"
    if (state.config.loadMs > 0) yield* Effect.sleep(state.config.loadMs)
    state.status = "loaded"
    state.lastUsed = Date.now()
    state.expiresAt = state.lastUsed + job.keepAliveMs
    s.stats.loads++
  })

const processJob = (s: Sched, job: Job) =>
  Effect.gen(function* () {
    s.pending--
    s.stats.queueChanged(s.pending)
    if (job.cancelled) return
    if (job.state.status !== "loaded") yield* load(s, job)
    if (job.cancelled) return
    job.granted = true
    job.state.active++
    Deferred.unsafeDone(job.done, Exit.succeed(nsSince(job.start)))
  })

const running = (s: Sched): Array<Running> => {
  sweep(s)
  const now = Date.now()
  const out: Array<Running> = []
  for (const state of s.states.values()) {
    if (state.status !== "loaded") continue
    out.push({ config: state.config, expiresAt: state.active > 0 ? now + state.keepAliveMs : state.expiresAt })
  }
  return out.sort((a, b) => b.expiresAt - a.expiresAt)
}

const unload = (s: Sched, name: string): void => {
  const state = s.states.get(normalizeName(name))
  if (state === undefined) return
  if (state.active === 0) unloadState(s, state)
  else state.unloadWhenIdle = true
}

/** Builds the scheduler and forks its queue worker into the current Scope. */
export const make = (config: SimulatorConfig, stats: Stats): Effect.Effect<Scheduler, never, Scope.Scope> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Job>()
    const s: Sched = {
      config,
      stats,
      queue,
      states: new Map(),
      pending: 0,
      waitingForSlot: 0,
      idle: Deferred.unsafeMake<void>(FiberId.none)
    }
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(queue), (job) => processJob(s, job))))
    return {
      acquire: (model, keepAliveMs) => acquire(s, model, keepAliveMs),
      warm: (model, keepAliveMs) =>
        Effect.scoped(
          Effect.uninterruptibleMask((restore) => {
            const state = stateOf(s, model)
            return restore(grant(s, state, keepAliveMs)).pipe(
              Effect.tap(() => Effect.addFinalizer(() => Effect.sync(() => releaseActive(s, state, keepAliveMs))))
            )
          })
        ),
      unload: (name) => Effect.sync(() => unload(s, name)),
      running: Effect.sync(() => running(s))
    }
  })
