/**
 * `POST /api/embed` (one L2-normalised vector per input, `[]` for empty input) and the legacy
 * `POST /api/embeddings` (one raw, not normalised vector). Cost: the model's fixed `requestMs` plus the
 * inputs' tokens × promptTokenMs, holding one slot of the model (so one call with many inputs pays the fixed
 * cost once). The vectors and their JSON are computed inside that time, not after it: the simulator's own CPU
 * (bag-of-words vectors, JSON of thousands of floats: ~9 ms for 64 × 384 here) stands in for the model's work, so
 * it must not add to the latency the config states (it did: embedding benches then measured the simulator).
 */
import type { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import type { Scope } from "effect"
import { EmbeddingsRequest, EmbedRequest } from "../Domain/Embed.js"
import { embedding, embedTokens, rawEmbedding } from "./Embedding.js"
import type { State } from "./State.js"
import { findModel, injectFault, jitterFactor, keepAliveMs, lease, notFoundPull, warm } from "./State.js"
import { midStreamErrorMessage } from "./Faults.js"
import { nsSince } from "./Inference.js"
import type { ModelConfig } from "./SimulatorConfig.js"
import type { ApiError, ResetConnection } from "./Wire.js"
import { decoder, fail, json, jsonText, readBody, readJson } from "./Wire.js"

type Handler = Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  ApiError | ResetConnection,
  HttpServerRequest.HttpServerRequest | Scope.Scope
>

const decodeEmbed = decoder(EmbedRequest)
const readEmbeddings = readBody(EmbeddingsRequest)

const validInput = (input: unknown): boolean =>
  input === undefined ||
  input === null ||
  typeof input === "string" ||
  (Array.isArray(input) && input.every((x) => typeof x === "string"))

const embeddingModel = (state: State, name: string): Effect.Effect<ModelConfig, ApiError> =>
  Effect.flatMap(findModel(state, name, notFoundPull), (model) =>
    model.capabilities.includes("embedding")
      ? Effect.succeed(model)
      : fail(400, `"${name}" does not support embeddings`)
  )

/**
 * Faults, a slot, and the evaluation time of `tokens`, within which `prepare` does the heavy work; the function it
 * returns builds the final JSON with the metrics (load time, total duration).
 */
const evaluate = (
  state: State,
  model: ModelConfig,
  keepAlive: number,
  tokens: number,
  prepare: () => (metrics: { loadNs: number; start: number }) => string
) =>
  Effect.gen(function* () {
    const start = performance.now()
    const fault = yield* injectFault(state)
    const loadNs = yield* lease(state, model, keepAlive)
    const ms = ((model.requestMs ?? 0) + tokens * model.promptTokenMs) * jitterFactor(state, model)
    const computing = performance.now()
    const finish = prepare()
    const left = ms - (performance.now() - computing)
    if (left > 0.5) yield* Effect.sleep(left)
    if (fault === "midStreamError") return yield* fail(500, midStreamErrorMessage)
    const text = finish({ loadNs, start })
    return jsonText(fault === "malformed" ? text.slice(0, Math.floor(text.length / 2)) : text)
  })

export const embed = (state: State): Handler =>
  Effect.gen(function* () {
    const raw = yield* readJson
    if (typeof raw === "object" && raw !== null && !validInput((raw as { input?: unknown }).input)) {
      return yield* fail(400, "invalid input type")
    }
    const req = yield* decodeEmbed(raw)
    const model = yield* embeddingModel(state, req.model)
    const keepAlive = yield* keepAliveMs(state, req.keep_alive)
    const inputs = typeof req.input === "string" ? (req.input === "" ? [] : [req.input]) : (req.input ?? [])
    if (inputs.length === 0) {
      yield* warm(state, model, keepAlive)
      return json({ model: req.model, embeddings: [] })
    }
    const counts = inputs.map(embedTokens)
    if (req.truncate === false && counts.some((n) => n > model.contextLength)) {
      return yield* fail(400, "the input length exceeds the context length")
    }
    const tokens = counts.reduce((sum, n) => sum + Math.min(n, model.contextLength), 0)
    const dim = model.embeddingLength ?? 768
    return yield* evaluate(state, model, keepAlive, tokens, () => {
      const vectors = JSON.stringify(inputs.map((text) => embedding(text, dim, req.dimensions)))
      return ({ loadNs, start }) =>
        `{"model":${JSON.stringify(req.model)},"embeddings":${vectors},"total_duration":${nsSince(start)},` +
        `"load_duration":${loadNs},"prompt_eval_count":${tokens}}`
    })
  })

export const embeddings = (state: State): Handler =>
  Effect.gen(function* () {
    const req = yield* readEmbeddings
    if (req.model === "") return yield* fail(400, "model is required")
    const model = yield* embeddingModel(state, req.model)
    const keepAlive = yield* keepAliveMs(state, req.keep_alive)
    const prompt = req.prompt ?? ""
    if (prompt === "") {
      yield* warm(state, model, keepAlive)
      return json({ embedding: [] })
    }
    const dim = model.embeddingLength ?? 768
    return yield* evaluate(state, model, keepAlive, embedTokens(prompt), () => {
      const text = JSON.stringify({ embedding: rawEmbedding(prompt, dim) })
      return () => text
    })
  })
