/**
 * Ollama's blob routes, over an in-memory map of digest to size (`State.blobs`; the bytes themselves are not kept):
 * `HEAD /api/blobs/:digest` answers 200 when the blob exists, else 404; `POST /api/blobs/:digest` hashes the body as
 * it streams in and answers 201 when its SHA-256 matches the digest, 200 without reading the body when the blob
 * already exists (as Ollama's CreateBlobHandler does), and 400 `digest mismatch, expected ..., got ...` otherwise.
 * A digest not of the form `sha256:<64 hex>` (or `sha256-<hex>`) is 400 `invalid digest format`.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Stream } from "effect"
import { createHash } from "node:crypto"
import type { State } from "./State.js"
import { ApiError, fail } from "./Wire.js"

const digestFormat = /^sha256[:-][0-9a-fA-F]{64}$/

/** The digest as the map keys it (`sha256:<hex>`), or a 400. */
const digestParam = Effect.flatMap(HttpRouter.params, (params) => {
  const digest = params["digest"] ?? ""
  return digestFormat.test(digest) ? Effect.succeed(`sha256:${digest.slice(7)}`) : fail(400, "invalid digest format")
})

const status = (code: number) => HttpServerResponse.empty({ status: code, headers: { "content-length": "0" } })

export const head = (state: State) =>
  Effect.flatMap(digestParam, (digest) =>
    state.blobs.has(digest) ? Effect.succeed(status(200)) : fail(404, `blob "${digest}" not found`)
  )

/** Reads the body chunk by chunk into a SHA-256, so a large upload is never held whole. */
const hashBody = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
  Effect.suspend(() => {
    const hash = createHash("sha256")
    let size = 0
    return request.stream.pipe(
      Stream.runForEach((chunk) =>
        Effect.sync(() => {
          hash.update(chunk)
          size += chunk.length
        })
      ),
      Effect.mapError(() => new ApiError({ status: 400, error: "failed to read request body" })),
      Effect.map(() => ({ digest: `sha256:${hash.digest("hex")}`, size }))
    )
  })
)

export const create = (state: State) =>
  Effect.gen(function* () {
    const digest = yield* digestParam
    if (state.blobs.has(digest)) return status(200)
    const got = yield* hashBody
    if (got.digest !== digest) return yield* fail(400, `digest mismatch, expected "${digest}", got "${got.digest}"`)
    state.blobs.set(digest, got.size)
    return status(201)
  })

/** The digests in a create request's `files` and `adapters` that were never uploaded. */
export const missing = (state: State, files: Readonly<Record<string, string>> | undefined): ReadonlyArray<string> =>
  Object.values(files ?? {}).filter((digest) => !state.blobs.has(digest.replace(/^sha256-/, "sha256:")))
