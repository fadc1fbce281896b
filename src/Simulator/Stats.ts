/**
 * The simulator's counters, read through `GET /_sim/stats` and `Simulator.stats`.
 *
 * They are plain mutable numbers updated synchronously by the scheduler and the routes: the simulator runs
 * on one JS thread and no update spans a yield, so no Ref is needed, and the hot path stays allocation-free.
 * `reset` zeroes the counters; peaks restart from the current values.
 */
import type { FaultKind } from "./Faults.js"
import { faultKinds } from "./Faults.js"

export interface ModelStats {
  /** Requests holding one of the model's slots right now. */
  readonly inFlight: number
  /** Most slots in use at once since the last reset. */
  readonly peakConcurrency: number
  /** Requests waiting for a slot right now. */
  readonly waiting: number
}

export interface SimulatorStats {
  /** Requests received, by route path (e.g. "/api/chat"). */
  readonly requests: Readonly<Record<string, number>>
  readonly models: Readonly<Record<string, ModelStats>>
  /** Per model: requests holding a slot right now (the same numbers as `models[m].inFlight`). */
  readonly inFlight: Readonly<Record<string, number>>
  /** Per model: most slots in use at once since the last reset. */
  readonly peakConcurrency: Readonly<Record<string, number>>
  /** Requests in the scheduling queue right now, and the most at once since the last reset. */
  readonly queueDepth: number
  readonly peakQueueDepth: number
  /** Clients that went away before their response finished. */
  readonly disconnects: number
  /** 503 responses sent (queue full or injected). */
  readonly rejected503: number
  readonly loads: number
  readonly unloads: number
  readonly faults: Readonly<Record<FaultKind, number>>
  /** Names of the models loaded right now. */
  readonly loaded: ReadonlyArray<string>
}

interface MutableModelStats {
  inFlight: number
  peakConcurrency: number
  waiting: number
}

const zeroFaults = (): Record<FaultKind, number> =>
  Object.fromEntries(faultKinds.map((k) => [k, 0])) as Record<FaultKind, number>

export class Stats {
  requests: Record<string, number> = {}
  models = new Map<string, MutableModelStats>()
  queueDepth = 0
  peakQueueDepth = 0
  disconnects = 0
  rejected503 = 0
  loads = 0
  unloads = 0
  faults = zeroFaults()

  request(route: string): void {
    this.requests[route] = (this.requests[route] ?? 0) + 1
  }

  model(name: string): MutableModelStats {
    let m = this.models.get(name)
    if (m === undefined) {
      m = { inFlight: 0, peakConcurrency: 0, waiting: 0 }
      this.models.set(name, m)
    }
    return m
  }

  slotTaken(name: string): void {
    const m = this.model(name)
    m.inFlight++
    if (m.inFlight > m.peakConcurrency) m.peakConcurrency = m.inFlight
  }

  queueChanged(depth: number): void {
    this.queueDepth = depth
    if (depth > this.peakQueueDepth) this.peakQueueDepth = depth
  }

  fault(kind: FaultKind): void {
    this.faults[kind]++
  }

  reset(): void {
    this.requests = {}
    for (const m of this.models.values()) m.peakConcurrency = m.inFlight
    this.peakQueueDepth = this.queueDepth
    this.disconnects = 0
    this.rejected503 = 0
    this.loads = 0
    this.unloads = 0
    this.faults = zeroFaults()
  }

  snapshot(loaded: ReadonlyArray<string>): SimulatorStats {
    const models: Record<string, ModelStats> = {}
    const inFlight: Record<string, number> = {}
    const peakConcurrency: Record<string, number> = {}
    for (const [name, m] of this.models) {
      models[name] = { ...m }
      inFlight[name] = m.inFlight
      peakConcurrency[name] = m.peakConcurrency
    }
    return {
      requests: { ...this.requests },
      models,
      inFlight,
      peakConcurrency,
      queueDepth: this.queueDepth,
      peakQueueDepth: this.peakQueueDepth,
      disconnects: this.disconnects,
      rejected503: this.rejected503,
      loads: this.loads,
      unloads: this.unloads,
      faults: { ...this.faults },
      loaded
    }
  }
}
