/**
 * `sluice keys create|list|revoke`: the gateway's API keys in the data directory's database (docs/security.md).
 * `create` prints the key once (only its SHA-256 digest is stored, so it cannot be shown again); `list` never
 * shows secrets; `revoke <id>` acts on the next request of a running gateway (keys are looked up per request).
 */
import { Args, Command, Options } from "@effect/cli"
import { Clock, Config, Console, Effect, Layer, Option } from "effect"
import * as AuthKey from "../Http/AuthKey.js"
import * as ConfigFile from "../Lifecycle/ConfigFile.js"
import { type ApiKey, allScopes, type KeyLimits, KeysRepo, type Scope } from "../Store/KeysRepo.js"
import * as Store from "../Store/Store.js"
import { table } from "./Archive.js"

const dataDir = Options.text("data-dir").pipe(
  Options.withDescription("the data directory (SLUICE_DATA_DIR)"),
  Options.withFallbackConfig(Config.string("SLUICE_DATA_DIR")),
  Options.withDefault("./data")
)
const count = (name: string, description: string) =>
  Options.integer(name).pipe(Options.withDescription(description), Options.optional)

const createOptions = {
  dataDir,
  name: Options.text("name").pipe(Options.withDescription("who or what the key is for (shown by list)")),
  scopes: Options.text("scopes").pipe(
    Options.withDescription(`comma list of ${allScopes.join(", ")}`),
    Options.withDefault("inference")
  ),
  rpm: count("rpm", "requests per minute"),
  tpm: count("tpm", "model tokens (prompt + completion) per minute"),
  concurrency: count("concurrency", "requests in flight at once"),
  priority: Options.choice("priority", ["interactive", "normal", "batch"]).pipe(
    Options.withDescription("the scheduler class of the key's calls (default normal)"),
    Options.optional
  ),
  budgetTokens: count("budget-tokens", "model tokens per request"),
  budgetSeconds: count("budget-seconds", "wall time per request, in seconds")
}

type CreateFlags = Command.Command.ParseConfig<typeof createOptions>

const invalid = (message: string) => Effect.fail(new Error(message))

/** The scopes of a comma list, each known, at least one. */
export const parseScopes = (text: string): Effect.Effect<ReadonlyArray<Scope>, Error> => {
  const names = [...new Set(text.split(",").map((s) => s.trim()))].filter((s) => s.length > 0)
  const unknown = names.filter((s) => !(allScopes as ReadonlyArray<string>).includes(s))
  if (unknown.length > 0) return invalid(`unknown scope(s) ${unknown.join(", ")}: use ${allScopes.join(", ")}`)
  if (names.length === 0) return invalid(`--scopes needs at least one of ${allScopes.join(", ")}`)
  return Effect.succeed(names as ReadonlyArray<Scope>)
}

/** `{ key: value }` when the option was given, else `{}` (optional fields stay absent, not undefined). */
const field = <K extends string, V>(key: K, value: Option.Option<V>): { [P in K]?: V } =>
  Option.match(value, { onNone: () => ({}), onSome: (v) => ({ [key]: v }) as { [P in K]?: V } })

/** The limits of the flags; every number must be a positive whole number. */
export const limitsOf = (flags: CreateFlags): Effect.Effect<KeyLimits, Error> =>
  Effect.gen(function* () {
    const numbers = {
      rpm: flags.rpm,
      tpm: flags.tpm,
      concurrency: flags.concurrency,
      "budget-tokens": flags.budgetTokens,
      "budget-seconds": flags.budgetSeconds
    }
    for (const [flag, value] of Object.entries(numbers))
      if (Option.exists(value, (n) => !(Number.isInteger(n) && n > 0)))
        return yield* invalid(`--${flag} must be a positive whole number`)
    const budget = {
      ...field("tokens", flags.budgetTokens),
      ...field(
        "timeMs",
        Option.map(flags.budgetSeconds, (s) => s * 1000)
      )
    }
    return {
      ...field("rpm", flags.rpm),
      ...field("tpm", flags.tpm),
      ...field("concurrency", flags.concurrency),
      ...field("priority", flags.priority),
      ...(Object.keys(budget).length === 0 ? {} : { budget })
    }
  })

/** The limits in words, e.g. `rpm 60, concurrency 4, priority batch`; `-` when none. */
export const describeLimits = (limits: KeyLimits): string => {
  const parts = [
    limits.rpm === undefined ? [] : [`rpm ${limits.rpm}`],
    limits.tpm === undefined ? [] : [`tpm ${limits.tpm}`],
    limits.concurrency === undefined ? [] : [`concurrency ${limits.concurrency}`],
    limits.priority === undefined ? [] : [`priority ${limits.priority}`],
    limits.budget?.tokens === undefined ? [] : [`budget ${limits.budget.tokens} tokens`],
    limits.budget?.timeMs === undefined ? [] : [`budget ${limits.budget.timeMs / 1000}s`]
  ].flat()
  return parts.length === 0 ? "-" : parts.join(", ")
}

const withRepo = <A, E>(dir: string, work: Effect.Effect<A, E, KeysRepo>) =>
  Effect.provide(work, KeysRepo.Default.pipe(Layer.provide(Store.layerFromConfig({ dataDir: dir }))))

/** `keys create`: stores a new key and prints it, once. */
export const runCreate = (flags: CreateFlags) =>
  Effect.gen(function* () {
    const name = flags.name.trim()
    if (name.length === 0) return yield* invalid("--name must not be empty")
    const scopes = yield* parseScopes(flags.scopes)
    // the config file's `keys.defaults` fill the limits the flags leave out
    const file = yield* ConfigFile.ConfigFile
    const defaults = Option.match(file, { onNone: () => ({}), onSome: (l) => l.file.keys?.defaults ?? {} })
    const limits = { ...defaults, ...(yield* limitsOf(flags)) }
    const made = yield* AuthKey.generate
    const createdAt = yield* Clock.currentTimeMillis
    yield* withRepo(
      flags.dataDir,
      Effect.flatMap(KeysRepo, (repo) =>
        repo.insert({ id: made.id, name, scopes, limits, createdAt, revokedAt: null, secretHash: made.secretHash })
      )
    )
    yield* Console.log(
      [
        `created API key ${made.id} (${name}): scopes ${scopes.join(",")}; limits ${describeLimits(limits)}`,
        made.key,
        "This is the only time the key is shown: store it now (Sluice keeps only its SHA-256 digest)."
      ].join("\n")
    )
  })

const time = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString())

/** The keys as a table, oldest first, without secrets. */
export const keysTable = (keys: ReadonlyArray<ApiKey>): string =>
  table([
    ["ID", "NAME", "SCOPES", "LIMITS", "CREATED", "REVOKED"],
    ...keys.map((k) => [
      k.id,
      k.name,
      k.scopes.join(","),
      describeLimits(k.limits),
      time(k.createdAt),
      time(k.revokedAt)
    ])
  ])

/** `keys list`. */
export const runList = (flags: { readonly dataDir: string }) =>
  Effect.gen(function* () {
    const at = yield* Store.location(flags.dataDir)
    const database = Store.describe(at)
    if (!Store.exists(at)) return yield* Console.log(`no database at ${database}: no API keys`)
    const keys = yield* withRepo(
      flags.dataDir,
      Effect.flatMap(KeysRepo, (repo) => repo.list)
    )
    yield* Console.log(keys.length === 0 ? `no API keys in ${database}` : keysTable(keys))
  })

/** `keys revoke <id>`: fails when there is no such key; says so when it was revoked already. */
export const runRevoke = (flags: { readonly dataDir: string; readonly id: string }) =>
  Effect.gen(function* () {
    const at = yield* Store.location(flags.dataDir)
    const database = Store.describe(at)
    if (!Store.exists(at)) return yield* invalid(`no database at ${database}: no API key ${flags.id}`)
    const now = yield* Clock.currentTimeMillis
    const outcome = yield* withRepo(
      flags.dataDir,
      Effect.gen(function* () {
        const repo = yield* KeysRepo
        const found = yield* repo.find(flags.id)
        if (Option.isSome(found) && found.value.revokedAt === null) yield* repo.revoke(flags.id, now)
        return found
      })
    )
    if (Option.isNone(outcome)) return yield* invalid(`no API key ${flags.id} in ${database}`)
    const { name, revokedAt } = outcome.value
    yield* Console.log(
      revokedAt === null
        ? `revoked API key ${flags.id} (${name}); a running gateway refuses it from its next request`
        : `API key ${flags.id} (${name}) was already revoked at ${time(revokedAt)}`
    )
  })

const create = Command.make("create", createOptions, runCreate).pipe(
  Command.withDescription("Create an API key and print it (the only time it is shown)")
)
const list = Command.make("list", { dataDir }, runList).pipe(
  Command.withDescription("List the API keys (never their secrets)")
)
const revoke = Command.make("revoke", { dataDir, id: Args.text({ name: "id" }) }, runRevoke).pipe(
  Command.withDescription("Revoke an API key: its next request gets 401")
)

export const keys = Command.make("keys").pipe(
  Command.withDescription("Manage the gateway's API keys (create, list, revoke)"),
  Command.withSubcommands([create, list, revoke])
)
