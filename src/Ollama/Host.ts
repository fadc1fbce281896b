/**
 * Ollama host strings (`OLLAMA_HOST`, a config file, a CLI flag) to a base URL, the way ollama-js `formatHost`
 * does (reference ollama-api.md §0 and §11): no scheme means `http://` and port 11434; an explicit scheme with no
 * port means 80 or 443; a trailing `/` is stripped; a path and `user:pw@` are kept.
 *
 * Invalid input (no URL, or a scheme other than http/https) is an `InvalidHost`: `decodeHost` returns it in an
 * `Either` (also an `Effect`, so `yield* decodeHost(s)` works in a generator); `parseHost` returns the string and
 * throws it, for call sites that hold a value already validated (config, CLI) or that accept a defect.
 * `splitCredentials` separates `user:pw@` from the URL, because the URL given to the HTTP pool and written into
 * logs and errors must not carry them; they become an `Authorization: Basic` header instead.
 */
import { Data, Either } from "effect"

/** The base URL used when the input is empty. */
export const defaultHost = "http://127.0.0.1:11434"
const defaultPort = "11434"

/** The host string cannot be turned into an http(s) base URL. */
export class InvalidHost extends Data.TaggedError("InvalidHost")<{
  readonly input: string
  readonly reason: string
}> {
  override get message() {
    return `invalid Ollama host ${JSON.stringify(this.input)}: ${this.reason}`
  }
}

const toUrl = (input: string, host: string): Either.Either<URL, InvalidHost> => {
  try {
    return Either.right(new URL(host))
  } catch (cause) {
    return Either.left(new InvalidHost({ input, reason: cause instanceof Error ? cause.message : String(cause) }))
  }
}

const credentials = (url: URL): string =>
  url.username === "" ? "" : `${url.username}${url.password === "" ? "" : `:${url.password}`}@`

/** Turns a host string into a base URL with an explicit port and no trailing `/`, or an `InvalidHost`. */
export const decodeHost = (input: string): Either.Either<string, InvalidHost> => {
  const trimmed = input.trim()
  if (trimmed === "") return Either.right(defaultHost)
  const startsWithPort = trimmed.startsWith(":")
  const explicitScheme = startsWithPort || trimmed.includes("://")
  const host = startsWithPort ? `http://127.0.0.1${trimmed}` : explicitScheme ? trimmed : `http://${trimmed}`
  return Either.flatMap(toUrl(input, host), (url) => {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return Either.left(new InvalidHost({ input, reason: `unsupported scheme ${url.protocol}` }))
    }
    if (url.hostname === "") return Either.left(new InvalidHost({ input, reason: "no host name" }))
    const port = url.port !== "" ? url.port : !explicitScheme ? defaultPort : url.protocol === "https:" ? "443" : "80"
    const formatted = `${url.protocol}//${credentials(url)}${url.hostname}:${port}${url.pathname}`
    return Either.right(formatted.endsWith("/") ? formatted.slice(0, -1) : formatted)
  })
}

/** Like `decodeHost`, but returns the base URL and throws `InvalidHost` for invalid input. */
export const parseHost = (input: string): string => Either.getOrThrowWith(decodeHost(input), (error) => error)

/** A base URL without credentials, and the `Authorization` header value the credentials stand for, if any. */
export interface Endpoint {
  readonly url: string
  readonly authorization: string | undefined
}

/** Splits `http://user:pw@host:port/path` into the bare URL and a Basic authorization value. */
export const splitCredentials = (baseUrl: string): Endpoint => {
  const url = new URL(baseUrl)
  if (url.username === "") return { url: baseUrl, authorization: undefined }
  const user = decodeURIComponent(url.username)
  const password = decodeURIComponent(url.password)
  const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`
  return { url: baseUrl.replace(credentials(url), ""), authorization }
}

/** The host of a base URL, IPv6 brackets removed (`http://[::1]:11434` -> `::1`). */
export const hostname = (baseUrl: string): string => new URL(baseUrl).hostname.replace(/^\[(.*)\]$/, "$1")
