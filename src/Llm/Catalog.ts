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
import type { OllamaClient } from "../Ollama/OllamaClient.js"
import { type Backend, Backends } from "./Backends.js"

const everywhere = <A>(
  all: ReadonlyArray<Backend>,
  f: (client: OllamaClient.Service) => Effect.Effect<A, OllamaError>
) =>
  Effect.flatMap(
    Effect.forEach(all, (b) => Effect.either(f(b.client)), { concurrency: "unbounded" }),
    (results): Effect.Effect<ReadonlyArray<A>, OllamaError> => {
      const ok = results.filter(Either.isRight).map((r) => r.right)
      const first = results.find(Either.isLeft)
      return ok.length === 0 && first !== undefined ? Effect.fail(first.left) : Effect.succeed(ok)
    }
  )

export class Catalog extends Effect.Service<Catalog>()("sluice/Catalog", {
  effect: Effect.gen(function* () {
    const backends = yield* Backends
    const best = (model: string) => Effect.map(backends.candidates(model), (list) => list[0] ?? backends.all[0]!)

    const list = Effect.map(
      everywhere(backends.all, (c) => c.list),
      (lists) => {
        const byName = new Map<string, ListModel>()
        for (const model of lists.flatMap((l) => l.models)) if (!byName.has(model.name)) byName.set(model.name, model)
        return { models: [...byName.values()] }
      }
    )
    const ps = Effect.map(
      everywhere(backends.all, (c) => c.ps),
      (lists) => ({
        models: lists.flatMap((l): ReadonlyArray<RunningModel> => l.models)
      })
    )
    const version: Effect.Effect<VersionResponse, OllamaError> = Effect.flatMap(
      everywhere(backends.all, (c) => c.version),
      (versions) => Effect.succeed(versions[0]!)
    )
    const show = (req: ShowRequest): Effect.Effect<ShowResponse, LlmError> =>
      Effect.flatMap(best(req.model ?? req.name ?? ""), (b) => b.client.show(req))
    /** The legacy `/api/embeddings` (not cached: its answer is not the `/api/embed` shape). */
    const embeddings = (req: EmbeddingsRequest): Effect.Effect<EmbeddingsResponse, LlmError> =>
      Effect.flatMap(best(req.model), (b) => backends.track(b)(b.breaker.protect(b.client.embeddings(req))))
    return { list, ps, version, show, embeddings } as const
  })
}) {}
