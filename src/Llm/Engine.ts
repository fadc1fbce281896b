/**
 * The whole engine as one Layer: `Llm` and `Catalog` over `Backends` and the `ResponseCache`. This is what
 * `sluice serve` provides and what an Effect app embeds when it wants every protection layer at once; each
 * part also has its own Layer for apps that want only some of them.
 */
import { Effect, Layer } from "effect"
import * as Sampler from "../Observability/Sampler.js"
import * as Slots from "./Scheduler/Slots.js"
import { Backends, type BackendConfig } from "./Backends.js"
import { Catalog } from "./Catalog.js"
import { Llm, type Options as LlmOptions } from "./Llm.js"
import * as ModelTable from "./ModelTable.js"
import { ResponseCache, type Options as CacheOptions } from "./ResponseCache.js"
import type { Duration } from "effect"

export interface Options extends LlmOptions {
  readonly backends: ReadonlyArray<BackendConfig>
  readonly cache?: Partial<CacheOptions>
  /** How often each backend's model list is refreshed. */
  readonly refreshEvery?: Duration.DurationInput
  /** Per-model settings: aliases, cache on/off, deadline (ModelTable.ts). */
  readonly models?: Readonly<Record<string, ModelTable.ModelSettings>>
}

/** Reads the engine's stats into the metrics, every few seconds and before each scrape. */
const sampler = Sampler.layer(
  Effect.gen(function* () {
    const backends = yield* Backends
    const cache = yield* ResponseCache
    const queue = Effect.map(
      Effect.forEach(backends.all, (b) => b.slots.snapshot),
      (snapshots) => ({
        capacity: snapshots.length * Slots.defaults.capacity,
        depth: Object.fromEntries(
          Slots.priorities.map((p) => [p, snapshots.reduce((sum, s) => sum + s.byPriority[p], 0)])
        )
      })
    )
    return { backends: backends.all, cache: cache.stats, queue }
  })
)

/** Llm + Catalog, with the Backends and ResponseCache they run on (also provided, for health and stats). */
export const layer = (options: Options) =>
  Layer.mergeAll(
    ModelTable.layer(options.models ?? {}, Llm.Default(options)),
    Catalog.Default.pipe(Layer.provide(Layer.succeed(ModelTable.ModelTable, ModelTable.make(options.models)))),
    sampler
  ).pipe(
    Layer.provideMerge(
      Layer.merge(
        Backends.Default({
          backends: options.backends,
          ...(options.refreshEvery === undefined ? {} : { refreshEvery: options.refreshEvery })
        }),
        ResponseCache.layer(options.cache ?? {})
      )
    )
  )
