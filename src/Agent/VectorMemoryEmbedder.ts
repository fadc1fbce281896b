/**
 * Where VectorMemory gets its embeddings: a port with one method, so tests plug a deterministic fake and the real
 * path is one Layer away. `layerLlm` embeds through the engine (`Llm.embedMany`), which batches concurrent inputs
 * into one `/api/embed` call, serves repeats from the response cache and retries across backends.
 */
import { Context, Effect, Layer } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import { Llm } from "../Llm/Llm.js"

export interface Service {
  /** One vector per text, in order. */
  readonly embed: (
    model: string,
    texts: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<number>>, LlmError>
}

export class Embedder extends Context.Tag("sluice/VectorMemory/Embedder")<Embedder, Service>() {}

/** Embeddings through the engine. */
export const layerLlm: Layer.Layer<Embedder, never, Llm> = Layer.effect(
  Embedder,
  Effect.map(Llm, (llm) => ({ embed: (model, texts) => llm.embedMany(model, texts) }))
)
