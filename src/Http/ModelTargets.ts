/**
 * Which backends a model-management request goes to: the `x-sluice-backend` header.
 *
 * Choices:
 * - A header, not a query parameter or a body field: Ollama's clients build the URL and the body themselves, but
 *   every one of them takes extra headers (`new Ollama({ host, headers })`), and the body stays Ollama's own.
 * - The value is `all`, or a comma list of backends, each the backend's URL in any OLLAMA_HOST spelling
 *   (`http://10.0.0.5:11434`, `10.0.0.5`, `:11434`) or its 0-based position in the configured list.
 * - Without the header: every backend, except for push, which needs only one (the best backend listing the model,
 *   as the engine would pick it for a call): pushing the same model from each backend would upload it again and again.
 * - A value naming no configured backend is a 400 that lists the backends, before anything is sent.
 */
import { Headers } from "@effect/platform"
import { Effect, Either, Option } from "effect"
import type { Backend, Backends } from "../Llm/Backends.js"
import { decodeHost, splitCredentials } from "../Ollama/Host.js"
import { BadRequest } from "./Guard.js"

/** The header that names the target backends. */
export const header = "x-sluice-backend"

const urlOf = (entry: string): string | undefined =>
  Either.match(decodeHost(entry), { onLeft: () => undefined, onRight: (url) => splitCredentials(url).url })

const find = (all: ReadonlyArray<Backend>, entry: string): Backend | undefined =>
  /^\d+$/.test(entry) ? all[Number(entry)] : all.find((b) => b.url === urlOf(entry))

const unknown = (all: ReadonlyArray<Backend>, entry: string) =>
  new BadRequest({
    reason:
      `unknown backend "${entry}" in ${header}: use "all", an index from 0 to ${all.length - 1}, ` +
      `or one of ${all.map((b) => b.url).join(", ")}`,
    status: 400
  })

/** The backends `value` names (every one for `all`); a name no backend has is a 400. */
export const parse = (
  all: ReadonlyArray<Backend>,
  value: string
): Effect.Effect<ReadonlyArray<Backend>, BadRequest> => {
  const entries = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
  if (entries.length === 0 || entries.some((e) => e.toLowerCase() === "all")) return Effect.succeed(all)
  const chosen: Array<Backend> = []
  for (const entry of entries) {
    const backend = find(all, entry)
    if (backend === undefined) return Effect.fail(unknown(all, entry))
    if (!chosen.includes(backend)) chosen.push(backend)
  }
  return Effect.succeed(chosen)
}

/** The targets of a request: the header's, else every backend. */
export const of = (backends: Backends, headers: Headers.Headers) =>
  Option.match(Headers.get(headers, header), {
    onNone: () => Effect.succeed(backends.all),
    onSome: (value) => parse(backends.all, value)
  })

/** The targets of a push: the header's, else the one backend the engine would pick for `model`. */
export const ofPush = (backends: Backends, headers: Headers.Headers, model: string) =>
  Option.match(Headers.get(headers, header), {
    onNone: () => Effect.map(backends.candidates(model), (list) => [list[0] ?? backends.all[0]!]),
    onSome: (value) => parse(backends.all, value)
  })
