/**
 * The archive file of one episode: gzip-compressed JSONL, the first line the episode row, then one line per tick
 * row in tick order, every row an object in the canonical column order of `Store/EpisodesRepo.ts`.
 *
 * Choices:
 * - Rows are kept as the database returned them (JSON columns stay JSON text), so a restore re-inserts exactly
 *   the values that were read, and the same rows always give the same bytes (fixed gzip level, no timestamp).
 * - Files are written durably: to a temporary name, fsync'ed, renamed into place, the directory fsync'ed.
 * - Names are `archive/<id>.jsonl.gz` relative to the data directory; an id with characters outside
 *   `[A-Za-z0-9_-]` gets them replaced and a hash of the id appended, so names never collide or escape.
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { mkdir, open, readFile, rename, rm } from "node:fs/promises"
import { dirname, join } from "node:path"
import { promisify } from "node:util"
import { gunzip, gzip } from "node:zlib"
import { canonical, episodeColumns, type Row, tickColumns } from "../Store/EpisodesRepo.js"
import { StorageError } from "../Store/StorageError.js"

const gzipAsync = promisify(gzip)
const gunzipAsync = promisify(gunzip)

/** The rows of an archived episode. */
export interface ArchivedRows {
  readonly episode: Row
  readonly ticks: ReadonlyArray<Row>
}

const failure = (operation: string) => (cause: unknown) =>
  new StorageError({
    operation,
    reason: cause instanceof Error ? cause.message : String(cause),
    retryable: false,
    cause
  })

const attempt = <A>(operation: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: failure(operation) }).pipe(Effect.withSpan(`Archive.${operation}`))

/** The archive file of episode `id`, relative to the data directory. */
export const fileFor = (id: string): string => {
  const safe = id.replace(/[^A-Za-z0-9_-]/g, "_")
  const suffix = safe === id && id.length > 0 ? "" : `-${sha256(Buffer.from(id)).slice(0, 12)}`
  return join("archive", `${safe.slice(0, 100)}${suffix}.jsonl.gz`)
}

export const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

/** The compressed file contents of the rows. */
export const encode = (rows: ArchivedRows): Effect.Effect<Uint8Array, StorageError> =>
  attempt("encode", () => {
    const lines = [canonical(episodeColumns, rows.episode), ...rows.ticks.map((t) => canonical(tickColumns, t))]
    return gzipAsync(lines.map((line) => `${JSON.stringify(line)}\n`).join(""), { level: 9 })
  })

const parseLine = (line: string, columns: ReadonlyArray<string>): Row => {
  const row = JSON.parse(line) as unknown
  if (typeof row !== "object" || row === null || Array.isArray(row)) throw new Error("a line is not a row object")
  const keys = Object.keys(row)
  if (keys.length !== columns.length || keys.some((k, i) => k !== columns[i])) {
    throw new Error(`unexpected columns: ${keys.join(", ")}`)
  }
  return row as Row
}

/** The rows of compressed file contents; fails on anything that is not a well-formed archive. */
export const decode = (bytes: Uint8Array): Effect.Effect<ArchivedRows, StorageError> =>
  attempt("decode", async () => {
    const text = (await gunzipAsync(bytes)).toString("utf8")
    const lines = text.split("\n").filter((line) => line.length > 0)
    if (lines[0] === undefined) throw new Error("empty archive file")
    const episode = parseLine(lines[0], episodeColumns)
    return { episode, ticks: lines.slice(1).map((line) => parseLine(line, tickColumns)) }
  })

/** Writes `bytes` to `path` durably (temporary file, fsync, rename, directory fsync). */
export const writeDurably = (path: string, bytes: Uint8Array): Effect.Effect<void, StorageError> =>
  attempt("write", async () => {
    await mkdir(dirname(path), { recursive: true })
    const temporary = `${path}.tmp`
    const file = await open(temporary, "w")
    try {
      await file.writeFile(bytes)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temporary, path)
    const directory = await open(dirname(path), "r")
    await directory.sync().finally(() => directory.close())
  })

export const read = (path: string): Effect.Effect<Uint8Array, StorageError> => attempt("read", () => readFile(path))

/** Removes a file if it is there. */
export const remove = (path: string): Effect.Effect<void, StorageError> =>
  attempt("remove", () => rm(path, { force: true }))

/** The absolute path of an archive file. */
export const pathOf = (dataDir: string, file: string): string => join(dataDir, file)
