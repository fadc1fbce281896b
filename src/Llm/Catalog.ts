/**
 * The model-management reads across every backend, as one Ollama would answer them: `list` is the union of
 * the backends' models (first backend wins on a duplicate name), `ps` concatenates what each has loaded,
 * `show` asks the best backend for the model, `version` the first backend that answers. A backend that fails
 * is left out of a union; only when every backend fails does the caller get the first error.
 */
import { Effect, Either } from "effect"
import type { LlmError, OllamaError } from "../Domain/LlmError.js"
import type { ListModel, RunningModel, ShowRequest, ShowResponse, VersionResponse } from "../Domain/Models.js"
import type { EmbeddingsRequest, EmbeddingsResponse } from "../Domain/Embed.js"
import { normalizeName } from "../Domain/ModelName.js"
import { type Backend, Backends } from "./Backends.js"
import { ModelTable } from "./ModelTable.js"

const everywhere = <A>(all: ReadonlyArray<Backend>, f: (backend: Backend) => Effect.Effect<A, OllamaError>) =>
  Effect.flatMap(
    Effect.forEach(all, (b) => Effect.either(f(b)), { concurrency: "unbounded" }),
    (results): Effect.Effect<ReadonlyArray<A>, OllamaError> => {
      const ok = results.filter(Either.isRight).map((r) => r.right)
      const first = results.find(Either.isLeft)
      return ok.length === 0 && first !== undefined ? Effect.fail(first.left) : Effect.succeed(ok)
    }
  )

export class Catalog extends Effect.Service<Catalog>()("sluice/Catalog", {
  effect: Effect.gen(function* () {
    const backends = yield* Backends
    const table = yield* ModelTable
    const best = (model: string) =>
      Effect.map(backends.candidates(table.resolve(model)), (list) => list[0] ?? backends.all[0]!)

    /** A backend's list, narrowed to the models it is configured to serve (if it was given a list). */
    const served = (b: Backend) =>
      Effect.map(b.client.list, (l) =>
        b.declared === undefined ? l.models : l.models.filter((m) => b.declared!.has(normalizeName(m.name)))
      )
    const list = Effect.map(everywhere(backends.all, served), (lists) => {
      const byName = new Map<string, ListModel>()
      for (const model of lists.flat())
        if (!byName.has(normalizeName(model.name))) byName.set(normalizeName(model.name), model)
      // an alias is listed as a copy of its model's entry, under its own name, when that model is served
      for (const [alias, model] of table.aliases) {
        const entry = byName.get(model)
        if (entry !== undefined && !byName.has(normalizeName(alias)))
          byName.set(normalizeName(alias), { ...entry, name: alias, model: alias })
      }
      return { models: [...byName.values()] }
    })
    const ps = Effect.map(
      everywhere(backends.all, (b) => b.client.ps),
      (lists) => ({
        models: lists.flatMap((l): ReadonlyArray<RunningModel> => l.models)
      })
    )
    const version: Effect.Effect<VersionResponse, OllamaError> = Effect.flatMap(
      everywhere(backends.all, (b) => b.client.version),
      (versions) => Effect.succeed(versions[0]!)
    )
    /** An alias in `model` (or the legacy `name`) replaced by the model it stands for. */
    const resolved = <R extends { readonly model?: string | undefined; readonly name?: string | undefined }>(
      req: R
    ) => {
      const name = req.model ?? req.name ?? ""
      const model = table.resolve(name)
      return model === name ? req : { ...req, ...(req.model === undefined ? { name: model } : { model }) }
    }
    const show = (req: ShowRequest): Effect.Effect<ShowResponse, LlmError> =>
      Effect.flatMap(best(req.model ?? req.name ?? ""), (b) => b.client.show(resolved(req)))
    /** The legacy `/api/embeddings` (not cached: its answer is not the `/api/embed` shape). */
    const embeddings = (req: EmbeddingsRequest): Effect.Effect<EmbeddingsResponse, LlmError> =>
      Effect.flatMap(best(req.model), (b) =>
        backends.track(b)(b.breaker.protect(b.client.embeddings({ ...req, model: table.resolve(req.model) })))
      )
    return { list, ps, version, show, embeddings } as const
  })
}) {}
