/**
 * Loads Sluice's config file (`--config path`, else `SLUICE_CONFIG`): YAML or JSON, decoded with the Schema of
 * ConfigFileSchema.ts, and turned into what the rest of Sluice reads:
 *
 * - a ConfigProvider holding the file's scalar settings under their environment names, installed behind the
 *   environment: every `Config.*("SLUICE_...")` read in src/ sees the environment first, then the file, then its
 *   own default, with no change to the code that reads it;
 * - the file itself (`ConfigFile` in context), for the structured parts: backends, models, key defaults.
 *
 * Choices:
 * - The `yaml` library (eemeli/yaml: maintained, no dependencies) parses both formats (JSON is YAML 1.2) and keeps
 *   every node's source range, so an error names the key and its line: `sluice.yaml:7: backends[1].slot: unknown
 *   key`. JSON.parse would not give lines.
 * - Errors are collected (`errors: "all"`), so one run of `sluice validate` shows every mistake in the file.
 * - A missing file named by `--config` or `SLUICE_CONFIG` is an error, not an empty config: the user asked for it.
 */
import { ConfigProvider, Context, Data, Effect, Either, Option, ParseResult, Schema } from "effect"
import { readFileSync } from "node:fs"
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from "yaml"
import * as FileSchema from "./ConfigFileSchema.js"

export class ConfigFileError extends Data.TaggedError("ConfigFileError")<{
  readonly path: string
  readonly problems: ReadonlyArray<string>
}> {
  override get message() {
    return `the config file ${this.path} is not valid:\n${this.problems.map((p) => `  ${p}`).join("\n")}`
  }
}

/** The config file in use, if any (none unless the CLI loaded one: library use and tests need not provide it). */
export class ConfigFile extends Context.Reference<ConfigFile>()("sluice/ConfigFile", {
  defaultValue: (): Option.Option<Loaded> => Option.none()
}) {}

export interface Loaded {
  readonly path: string
  readonly file: FileSchema.File
}

/** `path.to.key` for a Schema issue's path, with list indices as `[i]`. */
const describe = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (text, key) => (typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`),
    ""
  )

/** The 1-based line of the node at `path` (for an unknown key, the key itself), or of its nearest parent. */
const lineOf = (doc: Document, lines: LineCounter, path: ReadonlyArray<PropertyKey>): number => {
  let node: unknown = doc.contents
  let offset = 0
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key))
      if (pair === undefined) break
      offset = isScalar(pair.key) ? (pair.key.range?.[0] ?? offset) : offset
      node = pair.value
    } else if (isSeq(node) && typeof key === "number") {
      node = node.items[key]
      const range = (node as { range?: [number, number, number] } | undefined)?.range
      if (range !== undefined) offset = range[0]
    } else break
  }
  return lines.linePos(offset).line
}

const decode = Schema.decodeUnknownEither(FileSchema.File, { errors: "all", onExcessProperty: "error" })

/** Parses and checks `text` (the file at `path`). */
export const parse = (path: string, text: string): Either.Either<Loaded, ConfigFileError> => {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => `${path}:${lines.linePos(e.pos[0]).line}: ${e.message.split("\n")[0]}`)
    return Either.left(new ConfigFileError({ path, problems }))
  }
  const value: unknown = doc.toJS() ?? {}
  return Either.mapBoth(decode(value), {
    onLeft: (error) =>
      new ConfigFileError({
        path,
        problems: ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => {
          const where = describe(issue.path)
          const message = issue._tag === "Unexpected" ? "unknown key" : issue.message
          return `${path}:${lineOf(doc, lines, issue.path)}: ${where === "" ? "(top level)" : where}: ${message}`
        })
      }),
    onRight: (file) => ({ path, file })
  })
}

/** Reads and checks the file at `path`. */
export const load = (path: string): Effect.Effect<Loaded, ConfigFileError> =>
  Effect.try({
    try: () => readFileSync(path, "utf8"),
    catch: (e) => new ConfigFileError({ path, problems: [`cannot read it: ${(e as Error).message}`] })
  }).pipe(Effect.flatMap((text) => parse(path, text)))

const envValue = (value: unknown): string =>
  Array.isArray(value) ? value.map(String).join(",") : typeof value === "string" ? value : String(value)

/** The file's scalar settings under their environment names (ConfigFileSchema.envNames). */
export const toEnv = (file: FileSchema.File): Map<string, string> => {
  const env = new Map<string, string>()
  for (const [path, name] of FileSchema.envNames) {
    const value = path.reduce<unknown>(
      (node, key) => (node !== null && typeof node === "object" ? (node as Record<string, unknown>)[key] : undefined),
      file
    )
    if (value !== undefined) env.set(name, envValue(value))
  }
  return env
}

/** The environment first, then the file's settings (Effect's own `fromEnv` reads `process.env` on each lookup). */
export const provider = (
  loaded: Loaded,
  environment: ConfigProvider.ConfigProvider = ConfigProvider.fromEnv()
): ConfigProvider.ConfigProvider =>
  environment.pipe(ConfigProvider.orElse(() => ConfigProvider.fromMap(toEnv(loaded.file))))

/**
 * Takes `--config <path>` / `--config=<path>` out of `argv` (it applies to every command, before @effect/cli reads
 * the flags, whose fallbacks read the config), falling back to `SLUICE_CONFIG`.
 */
export const fromArgv = (
  argv: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv = process.env
): { readonly path: string | undefined; readonly argv: ReadonlyArray<string> } => {
  const rest: Array<string> = []
  let path: string | undefined = undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--config" && i + 1 < argv.length) path = argv[++i]
    else if (arg.startsWith("--config=")) path = arg.slice("--config=".length)
    else rest.push(arg)
  }
  const fallback = env["SLUICE_CONFIG"]
  return { path: path ?? (fallback !== undefined && fallback !== "" ? fallback : undefined), argv: rest }
}
