/**
 * The port to one Ollama server: every native endpoint as an `Effect` or a `Stream` that fails with `OllamaError`.
 *
 * - Requests are sent as JSON of the given object as-is plus `stream` (never encoded through Schema), so fields
 *   Sluice does not know pass through untouched. Answers keep unknown fields: chat, generate and embed answers
 *   are checked for the fields Sluice reads and passed through as parsed, the others decoded with the Domain
 *   schemas (`onExcessProperty: "preserve"`); see Decode.ts.
 * - `layer` owns its HTTP pool (`Pool.ts`): bounded sockets, keep-alive, explicit connect/headers/body timeouts;
 *   its unary calls dispatch on the pool directly (Direct.ts). `make` takes any `HttpClient` (tests, custom pools).
 * - `user:pw@` in the host becomes an `Authorization: Basic` header; `backend` (and every error and span) holds
 *   the base URL without credentials.
 * - Env config: `OLLAMA_HOST` and `SLUICE_OLLAMA_*` (see `config`); an invalid host is a ConfigError there, and
 *   a defect in `make`.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Config, ConfigError, Context, Duration, Effect, Either, Layer, type Scope, type Stream } from "effect"
import { type ChatRequest, ChatResponse } from "../Domain/Chat.js"
import type { EmbeddingsRequest, EmbeddingsResponse, EmbedRequest, EmbedResponse } from "../Domain/Embed.js"
import { type GenerateRequest, GenerateResponse } from "../Domain/Generate.js"
import type { OllamaError } from "../Domain/LlmError.js"
import {
  CopyRequest,
  CreateRequest,
  DeleteRequest,
  ListResponse,
  ProgressResponse,
  PsResponse,
  PullRequest,
  ShowRequest,
  ShowResponse,
  VersionResponse
} from "../Domain/Models.js"
import * as Decode from "./Decode.js"
import * as Deadline from "./Deadline.js"
import * as Direct from "./Direct.js"
import * as Host from "./Host.js"
import { isDone, isSuccess } from "./Ndjson.js"
import * as Pool from "./Pool.js"
import * as Transport from "./Transport.js"

export declare namespace OllamaClient {
  /** The Ollama native API. Stream methods end right after the terminal line. */
  export interface Service {
    /** The base URL, without credentials, e.g. `http://127.0.0.1:11434`. */
    readonly backend: string
    /** `GET /`: succeeds when the server answers 2xx. */
    readonly heartbeat: Effect.Effect<void, OllamaError>
    readonly version: Effect.Effect<VersionResponse, OllamaError>
    /** `GET /api/tags`. */
    readonly list: Effect.Effect<ListResponse, OllamaError>
    readonly ps: Effect.Effect<PsResponse, OllamaError>
    readonly show: (req: ShowRequest) => Effect.Effect<ShowResponse, OllamaError>
    /** Sends `stream: false`. */
    readonly chat: (req: ChatRequest) => Effect.Effect<ChatResponse, OllamaError>
    /** Sends `stream: true`. */
    readonly chatStream: (req: ChatRequest) => Stream.Stream<ChatResponse, OllamaError>
    readonly generate: (req: GenerateRequest) => Effect.Effect<GenerateResponse, OllamaError>
    readonly generateStream: (req: GenerateRequest) => Stream.Stream<GenerateResponse, OllamaError>
    readonly embed: (req: EmbedRequest) => Effect.Effect<EmbedResponse, OllamaError>
    readonly embeddings: (req: EmbeddingsRequest) => Effect.Effect<EmbeddingsResponse, OllamaError>
    readonly pull: (req: PullRequest) => Stream.Stream<ProgressResponse, OllamaError>
    readonly push: (req: PullRequest) => Stream.Stream<ProgressResponse, OllamaError>
    readonly create: (req: CreateRequest) => Stream.Stream<ProgressResponse, OllamaError>
    readonly copy: (req: CopyRequest) => Effect.Effect<void, OllamaError>
    /** `DELETE /api/delete` with a JSON body. */
    readonly delete: (req: DeleteRequest) => Effect.Effect<void, OllamaError>
  }
}

/** The service interface, also reachable as `OllamaClient.Service`. */
export type Service = OllamaClient.Service

/** The client of one Ollama server. The statics mirror the module's `make`, `layer` and `layerConfig`. */
export class OllamaClient extends Context.Tag("sluice/OllamaClient")<OllamaClient, OllamaClient.Service>() {
  static readonly make = (options: Options) => make(options)
  static readonly layer = (options: Options) => layer(options)
  static readonly layerConfig = (options?: Config.Config.Wrap<Options>) => layerConfig(options)
}

/** Where the server is, the pool settings (see `Pool.Options`; defaults in `defaults`) and extra headers. */
export interface Options extends Pool.Options {
  /** An OLLAMA_HOST-style string (`host`, `host:port`, `scheme://host[:port][/path]`, `:port`). */
  readonly host: string
  /** Added to every request (e.g. `authorization` for ollama.com or a proxy). */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** Every default, in one place. */
export const defaults = { host: Host.defaultHost, ...Pool.defaults } as const

const post = (path: string, body: object): Transport.Request => ({ verb: "POST", path, body })

/**
 * `req` with `stream` set, by Object.assign rather than `{ ...req, stream }`: on Node 20 a property added after a
 * spread gets a fresh hidden class on every call (Observability/Track.ts `upstream`; bench/hidden-classes.ts).
 */
const streaming = <R extends object>(req: R, stream: boolean): R & { readonly stream: boolean } =>
  Object.assign({}, req, { stream })

const get = (path: string): Transport.Request => ({ verb: "GET", path })

const nameOf = (req: { readonly model?: string | undefined; readonly name?: string | undefined }) =>
  req.model ?? req.name

/** Where the host points and the headers every request carries; the host is parsed here (invalid: a defect). */
const endpointOf = (options: Options) =>
  Effect.map(Effect.orDie(Host.decodeHost(options.host)), (host) => {
    const endpoint = Host.splitCredentials(host)
    const headers: Record<string, string> = {
      ...(endpoint.authorization === undefined ? {} : { authorization: endpoint.authorization }),
      ...options.headers
    }
    return { url: endpoint.url, headers }
  })

const httpTransport = (http: HttpClient.HttpClient, url: string, headers: Record<string, string>, options: Options) =>
  Transport.make(
    http.pipe(
      HttpClient.mapRequest(HttpClientRequest.prependUrl(url)),
      HttpClient.mapRequest(HttpClientRequest.setHeaders(headers))
    ),
    url,
    Pool.resolve(options)
  )

/** The service over any `HttpClient` (tests, custom pools); every exchange goes through it (Transport.ts). */
export const make = (options: Options): Effect.Effect<OllamaClient.Service, never, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const { url, headers } = yield* endpointOf(options)
    return service(httpTransport(yield* HttpClient.HttpClient, url, headers, options), url)
  })

/**
 * The service over its own pool (Pool.ts): unary calls dispatch on it directly (Direct.ts), streams and traced
 * calls go through an `HttpClient` over the same pool.
 */
export const makePooled = (options: Options): Effect.Effect<OllamaClient.Service, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { url, headers } = yield* endpointOf(options)
    const dispatcher = yield* Pool.makeDispatcher(options, Host.hostname(url))
    const traced = httpTransport(NodeHttpClient.makeUndici(dispatcher), url, headers, options)
    const deadlines = Pool.resolve(options)
    // its unary exchanges enforce a deadline handed down with the call (Deadline.ts)
    return Deadline.enforced(service(Direct.make({ dispatcher, backend: url, headers, deadlines }, traced), url))
  })

/** The method table: each method is one exchange of `Transport`. */
const service = (t: Transport.Transport, backend: string): OllamaClient.Service =>
  OllamaClient.of({
    backend,
    heartbeat: t.unit({ method: "heartbeat" }, get("/")),
    version: t.json({ method: "version" }, get("/api/version"), Decode.fromSchema(VersionResponse)),
    list: t.json({ method: "list" }, get("/api/tags"), Decode.fromSchema(ListResponse)),
    ps: t.json({ method: "ps" }, get("/api/ps"), Decode.fromSchema(PsResponse)),
    show: (req) =>
      t.json({ method: "show", model: nameOf(req) }, post("/api/show", req), Decode.fromSchema(ShowResponse)),
    chat: (req) => t.json({ method: "chat", model: req.model }, post("/api/chat", streaming(req, false)), Decode.chat),
    chatStream: (req) =>
      t.stream(
        { method: "chatStream", model: req.model },
        post("/api/chat", streaming(req, true)),
        ChatResponse,
        isDone
      ),
    generate: (req) =>
      t.json({ method: "generate", model: req.model }, post("/api/generate", streaming(req, false)), Decode.generate),
    generateStream: (req) =>
      t.stream(
        { method: "generateStream", model: req.model },
        post("/api/generate", streaming(req, true)),
        GenerateResponse,
        isDone
      ),
    embed: (req) => t.json({ method: "embed", model: req.model }, post("/api/embed", req), Decode.embed),
    embeddings: (req) =>
      t.json({ method: "embeddings", model: req.model }, post("/api/embeddings", req), Decode.embeddings),
    pull: (req) => progress(t, "pull", nameOf(req), post("/api/pull", streaming(req, true))),
    push: (req) => progress(t, "push", nameOf(req), post("/api/push", streaming(req, true))),
    create: (req) => progress(t, "create", req.model, post("/api/create", streaming(req, true))),
    copy: (req) => t.unit({ method: "copy", model: req.source }, post("/api/copy", req)),
    delete: (req) =>
      t.unit({ method: "delete", model: nameOf(req) }, { verb: "DELETE", path: "/api/delete", body: req })
  })

const progress = (t: Transport.Transport, method: string, model: string | undefined, request: Transport.Request) =>
  t.stream({ method, model }, request, ProgressResponse, isSuccess)

/** The client with its own bounded keep-alive pool, destroyed when the layer's scope closes. */
export const layer = (options: Options): Layer.Layer<OllamaClient> => Layer.scoped(OllamaClient, makePooled(options))

const hostConfig = Config.string("OLLAMA_HOST").pipe(
  Config.withDefault(defaults.host),
  Config.mapOrFail((host) =>
    Either.mapLeft(Host.decodeHost(host), (error) => ConfigError.InvalidData(["OLLAMA_HOST"], error.message))
  )
)

/**
 * The options from the environment: `OLLAMA_HOST`, `SLUICE_OLLAMA_CONNECTIONS`, `SLUICE_OLLAMA_CONNECT_TIMEOUT`,
 * `SLUICE_OLLAMA_HEADERS_TIMEOUT`, `SLUICE_OLLAMA_BODY_TIMEOUT`, `SLUICE_OLLAMA_KEEP_ALIVE` (durations such as
 * "30 seconds"; "0 millis" = no timeout).
 */
export const config: Config.Config<Options> = Config.all({
  host: hostConfig,
  connections: Config.integer("SLUICE_OLLAMA_CONNECTIONS").pipe(Config.withDefault(defaults.connections)),
  connectTimeout: duration("SLUICE_OLLAMA_CONNECT_TIMEOUT", defaults.connectTimeout),
  headersTimeout: duration("SLUICE_OLLAMA_HEADERS_TIMEOUT", defaults.headersTimeout),
  bodyTimeout: duration("SLUICE_OLLAMA_BODY_TIMEOUT", defaults.bodyTimeout),
  keepAlive: duration("SLUICE_OLLAMA_KEEP_ALIVE", defaults.keepAlive)
})

function duration(name: string, fallback: Duration.DurationInput): Config.Config<Duration.Duration> {
  return Config.duration(name).pipe(Config.withDefault(Duration.decode(fallback)))
}

/** The client configured from `Config` (by default `config`, i.e. the environment). */
export const layerConfig = (
  options: Config.Config.Wrap<Options> = config
): Layer.Layer<OllamaClient, ConfigError.ConfigError> => Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
