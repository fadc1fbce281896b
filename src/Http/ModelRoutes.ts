/**
 * Ollama's model-management writes through the gateway (docs/gateway.md, "Model management"): `/api/pull`,
 * `/api/push`, `/api/create`, `/api/copy`, `/api/delete`, `HEAD` and `POST /api/blobs/:digest`, forwarded to the
 * backends the `x-sluice-backend` header names (ModelTargets.ts; all of them by default, push to one).
 *
 * Choices:
 * - They need the `admin` scope (AuthPolicy.ts): they change shared servers. With authentication off (a loopback
 *   gateway and no key anywhere) they are open, as Ollama's own API is on the same machine.
 * - The body is checked before anything is sent (JSON of the route's wire Schema, a model named, a digest of
 *   Ollama's form): a bad body gets one clear 400 from Sluice rather than one per backend. Then it is forwarded as
 *   sent (unknown fields kept), with `stream` made explicit (Ollama's default: true).
 * - One target: the backend's answer is relayed as it is (status, content type, body; progress lines as they come).
 *   Several: ModelFanout.ts combines them. A blob's body is never held whole: it streams to the backend (to several
 *   at once, the slowest setting the pace, once a `HEAD` has left out those that have it).
 * - After a pull, create, copy or delete that succeeded, the engine's model lists are refreshed
 *   (`Backends.refresh`), before the terminal `success` line of a stream, so routing knows the change at once.
 */
import { HttpClientRequest, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Either, type Schema, Stream } from "effect"
import { CopyRequest, CreateRequest, DeleteRequest, PullRequest } from "../Domain/Models.js"
import type { Backend } from "../Llm/Backends.js"
import { BadRequest, decodeValue } from "./Body.js"
import { readJson } from "./Guard.js"
import { combine, line, parse, progress } from "./ModelFanout.js"
import { type Answer, isOk, ModelForward, post, relay } from "./ModelForward.js"
import * as ModelTargets from "./ModelTargets.js"
import * as Respond from "./Respond.js"

/** The routes' fixed paths (for metric labels). */
export const paths: ReadonlyArray<string> = ["/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"]

/** Answers every refusal in Ollama's error shape. */
const handle = <R>(effect: Effect.Effect<HttpServerResponse.HttpServerResponse, BadRequest, R>) =>
  Effect.catchAll(effect, (e) => Effect.succeed(Respond.error(e.status, e.message)))

const refuse = (reason: string) => Effect.fail(new BadRequest({ reason, status: 400 }))

type Named = { readonly model?: string | undefined; readonly name?: string | undefined }

/** The body as JSON checked with `schema`, and the model it names (`model`, else Ollama's older `name`). */
const bodyOf = <A extends Named, I>(schema: Schema.Schema<A, I>) => {
  const decode = decodeValue(schema)
  return Effect.gen(function* () {
    const raw = yield* readJson
    const req = yield* decode(raw)
    const model = req.model ?? req.name ?? ""
    if (model.trim() === "") return yield* refuse("model is required")
    return { raw: raw as Record<string, unknown>, req, model }
  })
}

/** Every target answers whole; one is relayed, several combined. `after` runs when the request succeeded. */
const unary = (
  targets: ReadonlyArray<Backend>,
  request: HttpClientRequest.HttpClientRequest,
  after: Effect.Effect<void>
) =>
  Effect.gen(function* () {
    const forward = yield* ModelForward
    const answers = yield* Effect.forEach(targets, (b) => forward.exchange(b, request), { concurrency: "unbounded" })
    const { ok, response } =
      answers.length === 1 ? { ok: isOk(answers[0]!.status), response: relay(answers[0]!) } : combine(answers)
    if (ok) yield* after
    return response
  })

/** One backend's progress stream relayed line by line; `after` runs before its `success` line. */
const relayStream = (backend: Backend, request: HttpClientRequest.HttpClientRequest, after: Effect.Effect<void>) =>
  Effect.gen(function* () {
    const forward = yield* ModelForward
    const opened = yield* forward.open(backend, request)
    if (Either.isLeft(opened)) return relay(opened.left)
    const response = opened.right
    if (!isOk(response.status)) return relay(yield* forward.read(backend, response))
    const encoder = new TextEncoder()
    const body = forward.lines(backend, response).pipe(
      Stream.mapEffect((text) => (parse(text)["status"] === "success" ? Effect.as(after, text) : Effect.succeed(text))),
      Stream.map((text) => encoder.encode(text + "\n")),
      Stream.catchAll((message) => Stream.succeed(line({ error: message })))
    )
    return HttpServerResponse.stream(body, {
      status: response.status,
      contentType: response.headers["content-type"] ?? "application/x-ndjson"
    })
  })

/** pull, push and create: a progress stream unless the body says `stream: false`. */
const progressRoute = <A extends Named & { readonly stream?: boolean | undefined }, I>(
  path: string,
  schema: Schema.Schema<A, I>,
  options: { readonly refresh: boolean; readonly push?: boolean }
) => {
  const body = bodyOf(schema)
  return handle(
    Effect.gen(function* () {
      const forward = yield* ModelForward
      const request = yield* HttpServerRequest.HttpServerRequest
      const { model, raw, req } = yield* body
      const targets = yield* options.push === true
        ? ModelTargets.ofPush(forward.backends, request.headers, model)
        : ModelTargets.of(forward.backends, request.headers)
      const after = options.refresh ? forward.backends.refresh : Effect.void
      const streamed = req.stream !== false
      const upstream = post(path, { ...raw, stream: streamed })
      if (!streamed) return yield* unary(targets, upstream, after)
      if (targets.length === 1) return yield* relayStream(targets[0]!, upstream, after)
      return yield* progress(forward, targets, upstream, after)
    })
  )
}

/** copy and delete: one whole answer per backend. */
const unaryRoute = <A, I>(
  schema: Schema.Schema<A, I>,
  check: (req: A) => string | undefined,
  request: (raw: unknown) => HttpClientRequest.HttpClientRequest
) => {
  const decode = decodeValue(schema)
  return handle(
    Effect.gen(function* () {
      const forward = yield* ModelForward
      const incoming = yield* HttpServerRequest.HttpServerRequest
      const raw = yield* readJson
      const problem = check(yield* decode(raw))
      if (problem !== undefined) return yield* refuse(problem)
      const targets = yield* ModelTargets.of(forward.backends, incoming.headers)
      return yield* unary(targets, request(raw), forward.backends.refresh)
    })
  )
}

const digestFormat = /^sha256[:-][0-9a-fA-F]{64}$/

/** The blob route's digest and targets; a digest not of Ollama's form is its 400 `invalid digest format`. */
const blobTargets = Effect.gen(function* () {
  const forward = yield* ModelForward
  const request = yield* HttpServerRequest.HttpServerRequest
  const digest = (yield* HttpRouter.params)["digest"] ?? ""
  if (!digestFormat.test(digest)) return yield* refuse("invalid digest format")
  const targets = yield* ModelTargets.of(forward.backends, request.headers)
  return { forward, request, path: `/api/blobs/${digest}`, targets }
})

/** `HEAD`: 200 when every target has the blob (so a client uploads it when one lacks it). */
const headBlob = handle(
  Effect.gen(function* () {
    const { forward, path, targets } = yield* blobTargets
    const answers = yield* Effect.forEach(targets, (b) => forward.exchange(b, HttpClientRequest.head(path)), {
      concurrency: "unbounded"
    })
    return answers.length === 1 ? relay(answers[0]!) : combine(answers, false).response
  })
)

/** `POST`: the body streamed to every target lacking the blob; 201 when one stored it, 200 when all had it. */
const postBlob = handle(
  Effect.scoped(
    Effect.gen(function* () {
      const { forward, path, request, targets } = yield* blobTargets
      const length = Number(request.headers["content-length"])
      const upload = (b: Backend, bytes: Stream.Stream<Uint8Array, unknown>) =>
        forward.exchange(
          b,
          HttpClientRequest.post(path).pipe(
            HttpClientRequest.bodyStream(bytes, {
              contentType: request.headers["content-type"] ?? "application/octet-stream",
              ...(Number.isFinite(length) ? { contentLength: length } : {})
            })
          )
        )
      if (targets.length === 1) return relay(yield* upload(targets[0]!, request.stream))
      const heads = yield* Effect.forEach(targets, (b) => forward.exchange(b, HttpClientRequest.head(path)), {
        concurrency: "unbounded"
      })
      const lacking = targets.filter((_, i) => heads[i]!.status === 404)
      const known: ReadonlyArray<Answer> = heads.filter((a) => a.status !== 404)
      if (lacking.length === 0 || known.some((a) => !isOk(a.status))) return combine(heads, false).response
      const copies =
        lacking.length === 1 ? [request.stream] : yield* Stream.broadcast(request.stream, lacking.length, 16)
      const posted = yield* Effect.forEach(lacking, (b, i) => upload(b, copies[i]!), { concurrency: "unbounded" })
      return combine([...known, ...posted], false).response
    })
  )
)

export const routes = HttpRouter.empty.pipe(
  HttpRouter.post("/api/pull", progressRoute("/api/pull", PullRequest, { refresh: true })),
  HttpRouter.post("/api/push", progressRoute("/api/push", PullRequest, { refresh: false, push: true })),
  HttpRouter.post("/api/create", progressRoute("/api/create", CreateRequest, { refresh: true })),
  HttpRouter.post(
    "/api/copy",
    unaryRoute(
      CopyRequest,
      (req) =>
        req.source.trim() === "" || req.destination.trim() === "" ? "source and destination are required" : undefined,
      (raw) => post("/api/copy", raw)
    )
  ),
  HttpRouter.del(
    "/api/delete",
    unaryRoute(
      DeleteRequest,
      (req) => ((req.model ?? req.name ?? "").trim() === "" ? "model is required" : undefined),
      (raw) => HttpClientRequest.del("/api/delete").pipe(HttpClientRequest.bodyUnsafeJson(raw))
    )
  ),
  HttpRouter.head("/api/blobs/:digest", headBlob),
  HttpRouter.post("/api/blobs/:digest", postBlob)
)

/** The service the routes forward through; the gateway provides it (Server.ts). */
export const layer = ModelForward.Default
