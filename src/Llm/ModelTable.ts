/**
 * Per-model settings (from the config file's `models:` or `Engine.Options.models`): aliases, and defaults for the
 * calls of a model (cache on or off, deadline). Fallbacks per model are `Options.fallbacks` (CallPolicy.ts).
 *
 * Choices:
 * - An alias is resolved before anything else reads the name (cache key, routing, breaker, fallbacks), so a call
 *   by alias and a call by name are the same call. The answer names the model that ran it, as Ollama's does.
 * - A call's own options win over the model's defaults (`cache`, `timeout`).
 * - Applied around `Llm` (`layer` wraps the service), so the engine's call path has no extra step when no model
 *   has settings; `Catalog` reads the table for listings (aliases appear in /api/tags and /v1/models).
 * - Names are compared normalised (`Llama3.2` is `llama3.2:latest`), as everywhere else in Sluice.
 */
import { Context, Duration, Effect, Layer } from "effect"
import { normalizeName } from "../Domain/ModelName.js"
import type { CallOptions } from "./CallPolicy.js"
import { Llm } from "./Llm.js"

export interface ModelSettings {
  /** Other names for this model. */
  readonly aliases?: ReadonlyArray<string>
  /** false: calls of this model bypass the response cache. */
  readonly cache?: boolean
  /** The whole call at most, retries included. */
  readonly deadline?: Duration.DurationInput
}

export interface Table {
  /** The model an alias stands for (normalised), or the name itself. */
  readonly resolve: (name: string) => string
  /** The model's defaults, under the call's own options. */
  readonly options: (model: string, call: CallOptions | undefined) => CallOptions | undefined
  /** Every alias with the (normalised) model it stands for. */
  readonly aliases: ReadonlyArray<readonly [alias: string, model: string]>
  readonly empty: boolean
}

export const make = (models: Readonly<Record<string, ModelSettings>> = {}): Table => {
  const byAlias = new Map<string, string>()
  const defaults = new Map<string, CallOptions>()
  const aliases: Array<readonly [string, string]> = []
  for (const [name, settings] of Object.entries(models)) {
    const model = normalizeName(name)
    for (const alias of settings.aliases ?? []) {
      byAlias.set(normalizeName(alias), model)
      aliases.push([alias, model])
    }
    const options: CallOptions = {
      ...(settings.cache === false ? { cache: "bypass" as const } : {}),
      ...(settings.deadline === undefined ? {} : { timeout: settings.deadline })
    }
    if (Object.keys(options).length > 0) defaults.set(model, options)
  }
  return {
    resolve: (name) => byAlias.get(normalizeName(name)) ?? name,
    options: (model, call) => {
      const own = defaults.get(normalizeName(model))
      return own === undefined ? call : { ...own, ...call }
    },
    aliases,
    empty: byAlias.size === 0 && defaults.size === 0
  }
}

/** The table in use; empty unless the engine was given model settings. */
export class ModelTable extends Context.Reference<ModelTable>()("sluice/ModelTable", {
  defaultValue: (): Table => make()
}) {}

type Service = Llm

/** `llm` with aliases resolved and the models' defaults applied to every call. */
export const wrap = (table: Table, llm: Service): Service => {
  const withModel =
    <Req extends { readonly model: string }, Out>(f: (req: Req, call?: CallOptions) => Out) =>
    (req: Req, call?: CallOptions): Out => {
      const model = table.resolve(req.model)
      return f(model === req.model ? req : { ...req, model }, table.options(model, call))
    }
  return Llm.make({
    ...llm,
    chat: withModel(llm.chat),
    chatServed: withModel(llm.chatServed),
    chatStream: withModel(llm.chatStream),
    chatStreamOpen: withModel(llm.chatStreamOpen),
    chatBatch: (reqs, call) =>
      llm.chatBatch(
        Array.from(reqs, (req) => ({ ...req, model: table.resolve(req.model) })),
        call
      ),
    generate: withModel(llm.generate),
    generateServed: withModel(llm.generateServed),
    generateStream: withModel(llm.generateStream),
    generateStreamOpen: withModel(llm.generateStreamOpen),
    embed: withModel(llm.embed),
    embedServed: withModel(llm.embedServed),
    embedMany: (model, texts, call) => {
      const resolved = table.resolve(model)
      return llm.embedMany(resolved, texts, table.options(resolved, call))
    }
  })
}

/** Puts `models` in force: the table in context (for Catalog) and `Llm` wrapped (when any model has settings). */
export const layer = <E, R>(models: Readonly<Record<string, ModelSettings>>, llm: Layer.Layer<Llm, E, R>) => {
  const table = make(models)
  return table.empty
    ? llm
    : Layer.effect(
        Llm,
        Effect.map(Llm, (inner) => wrap(table, inner))
      ).pipe(Layer.provide(llm), Layer.provide(Layer.succeed(ModelTable, table)))
}
