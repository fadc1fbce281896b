/**
 * Embedding micro-batching: single-text `embed` calls made by independent fibers within a short window are sent
 * as one `/api/embed` call with an array `input`, and each caller gets its own vector back.
 *
 * Choices:
 * - The window is `dataLoader` from @effect/experimental: it collects requests across fibers and flushes when
 *   the window (default 5 ms) has passed since the first one, or at once when `maxBatch` (default 64) wait.
 *   Effect's own request batching only sees the requests of one `Effect.all({ batching: true })`.
 * - The resolver (`RequestResolver.makeBatched`, capped with `batchN`) groups a flushed batch by model and by the
 *   fields that change the answer or the server's handling: truncate, dimensions, options, keep_alive. The group
 *   key is the canonical JSON of those (model normalised, absent fields left out, so `truncate: true` and an
 *   absent `truncate` are different groups). Each group is one call, the groups run concurrently, one span
 *   `EmbedBatcher.batch` per call.
 * - Identical texts in a group are sent once; every caller gets its copy of the vector.
 * - Every member is completed: a failed call fails every member with that call's error (the call is already
 *   retried by the engine's pipeline); an answer with the wrong number of vectors fails them with DecodeError.
 *   A caller interrupted before the flush leaves the batch; after it, its vector is simply dropped.
 * - `prompt_eval_count` is the batch total split across the members in proportion to their text length in
 *   characters (largest remainder, so the parts add up to the total). This is an approximation: tokens per
 *   character vary by text. `total_duration` and `load_duration` are the batch's (each caller waited for it).
 * - An empty text goes straight to `embedBatch` on its own: Ollama answers `embeddings: []` for it, which an
 *   array input cannot express.
 * - The batch runs on the batcher's fiber (the Scope of `make`), not the caller's: FiberRefs of the caller
 *   (budget scopes, the current span) do not reach `embedBatch`. Charge budgets at the caller, from the
 *   returned `prompt_eval_count`.
 */
import * as ExperimentalResolver from "@effect/experimental/RequestResolver"
import type { Duration, Scope } from "effect"
import { Effect, Exit, Ref, Request, RequestResolver } from "effect"
import type { KeepAlive, Options as ModelOptions } from "../Domain/Common.js"
import type { EmbedRequest, EmbedResponse } from "../Domain/Embed.js"
import { DecodeError, type LlmError } from "../Domain/LlmError.js"
import { normalizeName } from "../Domain/ModelName.js"
import { canonicalJson } from "./CacheKey.js"

export interface Options {
  /** How long the first request of a batch waits for company (default 5 ms). */
  readonly window?: Duration.DurationInput
  /** Most requests in one call (default 64). */
  readonly maxBatch?: number
}

/** One text to embed, with the request fields that decide which batch it may join. */
export interface EmbedOne {
  readonly model: string
  readonly input: string
  readonly truncate?: boolean
  readonly dimensions?: number
  readonly keep_alive?: KeepAlive
  readonly options?: ModelOptions
}

export interface Stats {
  /** Calls made to `embedBatch`. */
  readonly batches: number
  /** `embed` requests answered by those calls (success or failure). */
  readonly requests: number
  /** Requests whose text was already in their batch, so not sent again. */
  readonly deduplicated: number
  /** Most texts sent in one call. */
  readonly maxBatchSeen: number
}

export interface EmbedBatcher {
  /** Embeds one text; the answer has `embeddings: [vector]` (or `[]` for an empty text). */
  readonly embed: (req: EmbedOne) => Effect.Effect<EmbedResponse, LlmError>
  readonly stats: Effect.Effect<Stats>
}

interface EmbedItem extends Request.Request<EmbedResponse, LlmError> {
  readonly _tag: "EmbedItem"
  /** Unique per call, so that two equal requests are never merged by Effect's request machinery. */
  readonly id: number
  readonly group: string
  readonly one: EmbedOne
}
const EmbedItem = Request.tagged<EmbedItem>("EmbedItem")

/** The request fields shared by a group (all but the text), with absent fields left out. */
const sharedFields = ({ input: _input, ...rest }: EmbedOne): Omit<EmbedRequest, "input"> =>
  Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined)) as Omit<EmbedRequest, "input">

const groupKey = (one: EmbedOne): string => canonicalJson({ ...sharedFields(one), model: normalizeName(one.model) })

/** Splits `total` into integers proportional to `weights` that add up to `total` (largest remainder). */
export const apportion = (total: number, weights: ReadonlyArray<number>): Array<number> => {
  const sum = weights.reduce((a, b) => a + b, 0)
  if (sum === 0) return weights.map(() => 0)
  const exact = weights.map((w) => (total * w) / sum)
  const parts = exact.map(Math.floor)
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0])
  let left = total - parts.reduce((a, b) => a + b, 0)
  for (const [, i] of order) {
    if (left <= 0) break
    parts[i] = parts[i]! + 1
    left--
  }
  return parts
}

const groupBy = (items: ReadonlyArray<EmbedItem>): Array<ReadonlyArray<EmbedItem>> => {
  const groups = new Map<string, Array<EmbedItem>>()
  for (const item of items) {
    const group = groups.get(item.group)
    if (group === undefined) groups.set(item.group, [item])
    else group.push(item)
  }
  return [...groups.values()]
}

/** Each member's own answer out of the batch answer. */
const split = (
  members: ReadonlyArray<EmbedItem>,
  texts: ReadonlyMap<string, number>,
  res: EmbedResponse
): Array<EmbedResponse> => {
  const shares =
    res.prompt_eval_count === undefined
      ? undefined
      : apportion(
          res.prompt_eval_count,
          members.map((m) => m.one.input.length)
        )
  return members.map((member, i) => {
    const { embeddings: _embeddings, prompt_eval_count: _count, ...rest } = res
    const vector = res.embeddings[texts.get(member.one.input)!]!
    return { ...rest, embeddings: [vector], ...(shares === undefined ? {} : { prompt_eval_count: shares[i]! }) }
  })
}

const mismatch = (sent: number, got: number) =>
  new DecodeError({
    backend: "EmbedBatcher",
    method: "embed",
    reason: `sent ${sent} inputs in one batch but got ${got} embeddings back`
  })

/** Builds a batcher over `embedBatch` (the engine passes its pipeline call: array input -> one vector each). */
export const make = (
  embedBatch: (req: EmbedRequest) => Effect.Effect<EmbedResponse, LlmError>,
  options: Options = {}
): Effect.Effect<EmbedBatcher, never, Scope.Scope> =>
  Effect.gen(function* () {
    const maxBatch = Math.max(1, options.maxBatch ?? 64)
    const stats = yield* Ref.make<Stats>({ batches: 0, requests: 0, deduplicated: 0, maxBatchSeen: 0 })

    const record = (members: number, sent: number) =>
      Ref.update(stats, (s) => ({
        batches: s.batches + 1,
        requests: s.requests + members,
        deduplicated: s.deduplicated + members - sent,
        maxBatchSeen: Math.max(s.maxBatchSeen, sent)
      }))

    const runGroup = (members: ReadonlyArray<EmbedItem>) => {
      const first = members[0]!.one
      const texts = new Map<string, number>()
      for (const m of members) if (!texts.has(m.one.input)) texts.set(m.one.input, texts.size)
      const input = [...texts.keys()]
      return embedBatch({ ...sharedFields(first), model: first.model, input }).pipe(
        Effect.filterOrFail(
          (res) => res.embeddings.length === input.length,
          (res) => mismatch(input.length, res.embeddings.length)
        ),
        Effect.withSpan("EmbedBatcher.batch", { attributes: { model: first.model, size: input.length } }),
        Effect.exit,
        Effect.tap(() => record(members.length, input.length)),
        Effect.flatMap((exit) =>
          Exit.isFailure(exit)
            ? Effect.forEach(members, (m) => Request.failCause(m, exit.cause), { discard: true })
            : Effect.forEach(split(members, texts, exit.value), (res, i) => Request.succeed(members[i]!, res), {
                discard: true
              })
        )
      )
    }

    const resolver = RequestResolver.makeBatched((items: ReadonlyArray<EmbedItem>) =>
      Effect.forEach(groupBy(items), runGroup, { concurrency: "unbounded", discard: true })
    ).pipe(RequestResolver.batchN(maxBatch))
    const loader = yield* ExperimentalResolver.dataLoader(resolver, {
      window: options.window ?? "5 millis",
      maxBatchSize: maxBatch
    })

    let nextId = 0
    const embed = Effect.fn("EmbedBatcher.embed")(function* (one: EmbedOne) {
      if (one.input === "") return yield* embedBatch({ ...sharedFields(one), model: one.model, input: "" })
      return yield* Effect.request(EmbedItem({ id: nextId++, group: groupKey(one), one }), loader)
    })

    return { embed, stats: Ref.get(stats) } as const
  })

/** The single-text form of a request, or undefined when it carries several texts (those go out as they are). */
export const single = (req: EmbedRequest): EmbedOne | undefined => {
  const input = typeof req.input === "string" ? req.input : req.input?.length === 1 ? req.input[0] : undefined
  if (input === undefined) return undefined
  return {
    model: req.model,
    input,
    ...(req.truncate === undefined ? {} : { truncate: req.truncate }),
    ...(req.dimensions === undefined ? {} : { dimensions: req.dimensions }),
    ...(req.keep_alive === undefined ? {} : { keep_alive: req.keep_alive }),
    ...(req.options === undefined ? {} : { options: req.options })
  }
}
