/**
 * The gateway's authentication policy: which routes are public, which scope each route needs, where a key is read
 * from, and the settings (SLUICE_API_KEY, SLUICE_API_KEYS, SLUICE_PUBLIC_ROUTES) with their defaults.
 *
 * Choices:
 * - A route no table names needs `admin`: a new endpoint is closed until someone decides otherwise.
 * - Public routes are exact paths, or prefixes written `/path/*`; by default only `/health/live` (a liveness
 *   probe must work without a secret; readiness and the full health report tell more, so they need `admin`).
 * - `Authorization: Bearer <key>` is read first, then `x-api-key` (Anthropic-style clients).
 */
import { Headers } from "@effect/platform"
import { Config, Option, Redacted } from "effect"
import type { Scope } from "../Store/KeysRepo.js"

/** The routes that need `inference`, beside `/v1/*` (the OpenAI API). */
export const inferenceRoutes: ReadonlyArray<string> = [
  "/",
  "/api/chat",
  "/api/generate",
  "/api/embed",
  "/api/embeddings",
  "/api/show",
  "/api/tags",
  "/api/ps",
  "/api/version"
]

/** Ollama's model-management writes (Http/ModelRoutes.ts), beside `/api/blobs/*`: admin, named so on purpose. */
export const modelRoutes: ReadonlyArray<string> = ["/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"]

const under = (path: string, base: string) => path === base || path.startsWith(`${base}/`)

/**
 * The scope a path needs: admin for model management (`modelRoutes`, `/api/blobs/*`), inference (also
 * `/batches/*`), agents, else admin (`/metrics`, `/health`, the rest).
 */
export const scopeOf = (path: string): Scope => {
  if (modelRoutes.includes(path) || under(path, "/api/blobs")) return "admin"
  if (inferenceRoutes.includes(path) || under(path, "/v1") || under(path, "/batches")) return "inference"
  if (under(path, "/agents")) return "agents"
  return "admin"
}

/** Whether `path` is public: equal to an entry, or under an entry written `/prefix/*`. */
export const isPublic = (path: string, routes: ReadonlyArray<string>): boolean =>
  routes.some((route) => (route.endsWith("/*") ? under(path, route.slice(0, -2)) : path === route))

/** The path of a request URL, without the query. */
export const pathOf = (url: string): string => {
  const end = url.search(/[?#]/)
  return end === -1 ? url : url.slice(0, end)
}

/** OpenAI's API answers errors in OpenAI's envelope; everything else in Ollama's `{"error": ...}`. */
export type Flavor = "ollama" | "openai"

export const flavorOf = (path: string): Flavor => (under(path, "/v1") ? "openai" : "ollama")

/** The key a request presents: `Authorization: Bearer <key>`, else `x-api-key`. */
export const credentialOf = (headers: Headers.Headers): Option.Option<string> => {
  const bearer = Option.flatMap(Headers.get(headers, "authorization"), (value) => {
    const match = /^bearer\s+(\S+)\s*$/i.exec(value)
    return Option.fromNullable(match?.[1])
  })
  return Option.orElse(bearer, () =>
    Option.filter(
      Option.map(Headers.get(headers, "x-api-key"), (v) => v.trim()),
      (v) => v.length > 0
    )
  )
}

export interface Settings {
  /** The address the gateway binds; on loopback, authentication is off until a key exists. */
  readonly host: string
  /** Keys from the environment, each with every scope and no limits. */
  readonly apiKeys: ReadonlyArray<Redacted.Redacted<string>>
  /** Paths served without a key. */
  readonly publicRoutes: ReadonlyArray<string>
}

/** The defaults, in one place. */
export const defaults = { publicRoutes: ["/health/live"] } as const

const list = (value: string) =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)

/**
 * `SLUICE_API_KEY` (one key) and `SLUICE_API_KEYS` (a comma list): admin keys with every scope, for simple
 * deployments and tests. `SLUICE_PUBLIC_ROUTES`: a comma list of public paths (default `/health/live`).
 */
export const settings: Config.Config<Omit<Settings, "host">> = Config.all({
  one: Config.option(Config.redacted("SLUICE_API_KEY")),
  many: Config.option(Config.redacted("SLUICE_API_KEYS")),
  publicRoutes: Config.string("SLUICE_PUBLIC_ROUTES").pipe(
    Config.map(list),
    Config.withDefault<ReadonlyArray<string>>(defaults.publicRoutes)
  )
}).pipe(
  Config.map(({ many, one, publicRoutes }) => ({
    apiKeys: [
      ...Option.toArray(one),
      ...Option.toArray(many).flatMap((r) => list(Redacted.value(r)).map((k) => Redacted.make(k)))
    ].filter((r) => Redacted.value(r).trim().length > 0),
    publicRoutes
  }))
)
