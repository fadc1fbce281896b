/**
 * Sluice's agent API (docs/gateway.md): start an episode of an agent spec in the background, list episodes, show
 * one with its ticks (and the lease of the instance running it), cancel a running one, on whichever instance runs
 * it (AgentRuns.ts). The runtime is optional in the gateway: without `AgentRuns` every route answers 503. Errors
 * answer in Ollama's `{"error": ...}` shape.
 */
import { HttpRouter, HttpServerRequest, type HttpServerResponse } from "@effect/platform"
import { Effect, Option, ParseResult, Schema } from "effect"
import * as AgentSpec from "../Agent/AgentSpec.js"
import { HotStatus } from "../Domain/Episode.js"
import { AgentRuns } from "./AgentRuns.js"
import { decodeBody } from "./Body.js"
import * as Respond from "./Respond.js"

const Start = Schema.Struct({ spec: Schema.Unknown, goal: Schema.optional(Schema.String) })

const ListParams = Schema.Struct({
  agent: Schema.optional(Schema.String),
  status: Schema.optional(HotStatus),
  limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000)))
})

const notEnabled = Respond.error(503, "agents are not enabled")

/** Every failure as an Ollama error: a bad request or spec is 400, anything else 500. */
const failure = (e: { readonly _tag: string; readonly message: string }) => {
  switch (e._tag) {
    case "BadRequest":
      return Respond.error((e as { status?: number }).status ?? 400, e.message)
    case "SpecError":
    case "ParseError":
      return Respond.error(400, e.message)
    case "AlreadyRunning":
      return Respond.error(409, e.message)
    default:
      return Respond.error(500, e.message)
  }
}

/** Runs `f` with the agent runtime, or answers 503 when the gateway runs without it. */
const withRuns = <E extends { readonly _tag: string; readonly message: string }, R>(
  f: (runs: AgentRuns) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.flatMap(Effect.serviceOption(AgentRuns), (runs) =>
    Option.isNone(runs) ? Effect.succeed(notEnabled) : Effect.catchAll(f(runs.value), (e) => Effect.succeed(failure(e)))
  )

const idParam = Effect.map(HttpRouter.params, (p) => p.id ?? "")

const unknownEpisode = (id: string) => Respond.error(404, `episode "${id}" not found`)

const start = withRuns((runs) =>
  Effect.gen(function* () {
    const body = yield* decodeBody(Start)
    const spec = yield* AgentSpec.decode(body.spec, "(request body)")
    const episode = yield* runs.start(spec, body.goal)
    return Respond.json({ id: episode.id, status: "running" }, 202)
  })
)

const list = withRuns((runs) =>
  Effect.gen(function* () {
    const query = yield* HttpServerRequest.schemaSearchParams(ListParams).pipe(
      Effect.mapError((e) => ({ _tag: "ParseError", message: ParseResult.TreeFormatter.formatErrorSync(e) }))
    )
    return Respond.json({ episodes: yield* runs.episodes.list(query) })
  })
)

const show = withRuns((runs) =>
  Effect.gen(function* () {
    const id = yield* idParam
    const found = yield* runs.episodes.get(id)
    if (Option.isNone(found)) return unknownEpisode(id)
    const lease = Option.map(yield* runs.leases.get(id), ({ cancelRequested, expiresAt, owner }) => ({
      owner,
      expiresAt,
      cancelRequested
    }))
    return Respond.json({
      ...found.value.episode,
      ...Option.match(lease, { onNone: () => ({}), onSome: (l) => ({ lease: l }) }),
      ticks: found.value.ticks
    })
  })
)

const cancel = withRuns((runs) =>
  Effect.gen(function* () {
    const id = yield* idParam
    const cancelled = yield* runs.cancel(id)
    switch (cancelled._tag) {
      case "NotFound":
        return unknownEpisode(id)
      case "NotRunning":
        return Respond.error(409, `episode "${id}" is not running on any instance (${cancelled.status})`)
      case "Stopped":
        return Respond.json({ id, status: cancelled.status }, 202)
      case "Requested":
        return Respond.json({ id, status: "cancelling", owner: cancelled.owner }, 202)
    }
  })
)

export const routes = HttpRouter.empty.pipe(
  HttpRouter.post("/agents/episodes", start),
  HttpRouter.get("/agents/episodes", list),
  HttpRouter.get("/agents/episodes/:id", show),
  HttpRouter.post("/agents/episodes/:id/cancel", cancel)
)
