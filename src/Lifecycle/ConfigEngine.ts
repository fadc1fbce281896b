/**
 * The config file's structured parts as the engine's inputs: its backends (each with its own settings) and its
 * models (aliases, fallbacks, cache and deadline per model).
 *
 * Precedence of the backend list: `--ollama` flags, else `OLLAMA_HOST`, else the file's `backends`, else the
 * default address. A list from flags or the environment gets the settings for every backend only.
 */
import { Config, type ConfigError, Duration, Effect, Option } from "effect"
import * as SluiceConfig from "../Config.js"
import type { BackendConfig } from "../Llm/Backends.js"
import type * as CircuitBreaker from "../Llm/CircuitBreaker.js"
import * as Fallback from "../Llm/Fallback.js"
import type { ModelSettings } from "../Llm/ModelTable.js"
import { decodeHost, type InvalidHost } from "../Ollama/Host.js"
import { ConfigFile } from "./ConfigFile.js"
import type * as FileSchema from "./ConfigFileSchema.js"
import type { Target } from "./BackendChoice.js"

const strategy = (f: FileSchema.Fallback): Fallback.Strategy =>
  f === "stale" ? Fallback.stale : "model" in f ? Fallback.alternate(f.model) : Fallback.reply(f.reply)

/** The model an alias in a backend's `models` stands for (so a backend may list either). */
const canonical = (file: FileSchema.File) => {
  const byAlias = new Map<string, string>()
  for (const [name, model] of Object.entries(file.models ?? {}))
    for (const alias of model.aliases ?? []) byAlias.set(alias, name)
  return (name: string) => byAlias.get(name) ?? name
}

/** A duration the file's Schema already checked. */
const duration = (text: string): Duration.Duration => Option.getOrThrow(Duration.decodeUnknown(text))

/** Only the keys whose value is defined (the options use exactOptionalPropertyTypes). */
const defined = <A extends object>(record: A): { [K in keyof A]?: Exclude<A[K], undefined> } =>
  Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as never

const breakerOf = (b: NonNullable<FileSchema.Backend["breaker"]>): CircuitBreaker.Options =>
  defined({
    consecutiveFailures: b.consecutiveFailures,
    failureRatio: b.failureRatio,
    minimumVolume: b.minimumVolume,
    backoffFactor: b.backoffFactor,
    window: b.window === undefined ? undefined : duration(b.window),
    openFor: b.openFor === undefined ? undefined : duration(b.openFor),
    maxOpenFor: b.maxOpenFor === undefined ? undefined : duration(b.maxOpenFor)
  })

const backendOf =
  (file: FileSchema.File) =>
  (b: FileSchema.Backend): Effect.Effect<BackendConfig, InvalidHost> =>
    Effect.map(decodeHost(b.url), (url) => {
      const rateLimit = defined({ requestsPerSecond: b.requestsPerSecond, tokensPerMinute: b.tokensPerMinute })
      return {
        url,
        ...defined({
          slots: b.slots,
          priority: b.priority,
          queueCapacity: b.queueCapacity,
          connections: b.connections,
          models: b.models?.map(canonical(file)),
          connectTimeout: b.connectTimeout === undefined ? undefined : duration(b.connectTimeout),
          headersTimeout: b.headersTimeout === undefined ? undefined : duration(b.headersTimeout),
          bodyTimeout: b.bodyTimeout === undefined ? undefined : duration(b.bodyTimeout),
          breaker: b.breaker === undefined ? undefined : breakerOf(b.breaker),
          rateLimit: Object.keys(rateLimit).length > 0 ? rateLimit : undefined
        })
      }
    })

/** The backends to serve in front of: the flags', else OLLAMA_HOST's, else the file's, else the default. */
export const targets = (
  flags: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<Target>, InvalidHost | ConfigError.ConfigError> =>
  Effect.gen(function* () {
    if (flags.length > 0) return yield* Effect.forEach(flags, (url) => decodeHost(url))
    const env = yield* Config.option(Config.string("OLLAMA_HOST"))
    const file = yield* ConfigFile
    if (Option.isNone(env) && Option.isSome(file) && (file.value.file.backends ?? []).length > 0) {
      const loaded = file.value.file
      return yield* Effect.forEach(loaded.backends ?? [], backendOf(loaded))
    }
    const given = yield* SluiceConfig.ollamaHosts
    return yield* Effect.forEach(given, (url) => decodeHost(url))
  })

/** The engine settings the file's `models` section gives: per-model settings and fallbacks. */
export const models = Effect.map(ConfigFile, (file) => {
  const entries = Option.match(file, { onNone: () => [], onSome: (l) => Object.entries(l.file.models ?? {}) })
  const settings: Record<string, ModelSettings> = {}
  const fallbacks: Record<string, ReadonlyArray<Fallback.Strategy>> = {}
  for (const [name, m] of entries) {
    settings[name] = {
      ...(m.aliases === undefined ? {} : { aliases: m.aliases }),
      ...(m.cache === undefined ? {} : { cache: m.cache }),
      ...(m.deadline === undefined ? {} : { deadline: duration(m.deadline) })
    }
    if (m.fallbacks !== undefined) fallbacks[name] = m.fallbacks.map(strategy)
  }
  return entries.length === 0 ? {} : { models: settings, fallbacks }
})
