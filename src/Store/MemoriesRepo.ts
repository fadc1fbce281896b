/**
 * The memories tables (migration 0003): namespace pins and memories with float32 vectors.
 *
 * Choices:
 * - Vectors are stored as the caller gave them (not normalised), float32 little-endian, whatever the host's byte
 *   order; reads on a little-endian host with an aligned buffer are a view, otherwise a copy through a DataView.
 * - Metadata is JSON in a TEXT column, decoded with Schema; a row that does not decode is a StorageError.
 * - Every query has an index (see the migration); the statements are exported as `queries` so a test can run
 *   EXPLAIN QUERY PLAN on exactly what the repository runs.
 * - Lists of ids are sent in chunks of 500 (far below SQLite's and PostgreSQL's parameter limits); a namespace's
 *   vectors are read in pages of 1000 along the index (keyset on (agent, expires_at, id), a row-value comparison
 *   that SQLite and PostgreSQL both run as an index range).
 */
import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Chunk, Effect, Option, Schema, Stream } from "effect"
import { endianness } from "node:os"
import { fromSqlError, storage, StorageError } from "./StorageError.js"

export const Metadata = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type Metadata = typeof Metadata.Type

/** One memory as stored (the vector aside). Times are epoch milliseconds. */
export const Memory = Schema.Struct({
  id: Schema.String,
  agent: Schema.String,
  namespace: Schema.String,
  text: Schema.String,
  /** 0..1: how much the memory resists eviction. */
  importance: Schema.Number,
  createdAt: Schema.Number,
  lastUsedAt: Schema.Number,
  /** Writes (merges included) and recalls that returned it. */
  uses: Schema.Number,
  /** When the sweep deletes it unless it is used again. */
  expiresAt: Schema.Number,
  metadata: Schema.optional(Metadata)
})
export type Memory = typeof Memory.Type

/** A new memory with its vector, its model and the cleanup key already computed. */
export interface NewMemory extends Memory {
  readonly model: string
  readonly vector: ArrayLike<number>
}

export interface Pin {
  readonly namespace: string
  readonly model: string
  readonly dim: number
}

/** The index's view of a row: enough to rebuild the in-memory index. */
export interface VectorRow {
  readonly id: string
  readonly agent: string
  readonly created_at: number
  readonly expires_at: number
  readonly vector: Uint8Array
}

const Row = Schema.Struct({
  id: Schema.String,
  agent: Schema.String,
  namespace: Schema.String,
  text: Schema.String,
  importance: Schema.Number,
  created_at: Schema.Number,
  last_used_at: Schema.Number,
  uses: Schema.Number,
  expires_at: Schema.Number,
  metadata: Schema.NullOr(Schema.parseJson(Metadata))
})
const decodeRows = Schema.decodeUnknown(Schema.Array(Row))

const toMemory = (row: typeof Row.Type): Memory => ({
  id: row.id,
  agent: row.agent,
  namespace: row.namespace,
  text: row.text,
  importance: row.importance,
  createdAt: row.created_at,
  lastUsedAt: row.last_used_at,
  uses: row.uses,
  expiresAt: row.expires_at,
  ...(row.metadata === null ? {} : { metadata: row.metadata })
})

const littleEndian = endianness() === "LE"

/** A vector as a float32 little-endian blob. */
export const encodeVector = (vector: ArrayLike<number>): Uint8Array => {
  if (littleEndian) return new Uint8Array(Float32Array.from(vector).buffer)
  const bytes = new Uint8Array(vector.length * 4)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < vector.length; i++) view.setFloat32(i * 4, vector[i]!, true)
  return bytes
}

/** A float32 little-endian blob as a vector (a view when the host and the alignment allow it). */
export const decodeVector = (bytes: Uint8Array): Float32Array => {
  const length = bytes.byteLength >>> 2
  if (littleEndian && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, length)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Float32Array(length)
  for (let i = 0; i < length; i++) out[i] = view.getFloat32(i * 4, true)
  return out
}

const chunkSize = 500
const pageSize = 1000
const chunks = <A>(items: ReadonlyArray<A>, size = chunkSize): Array<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

const toRow = (m: NewMemory) => ({
  id: m.id,
  agent: m.agent,
  namespace: m.namespace,
  model: m.model,
  dim: m.vector.length,
  vector: encodeVector(m.vector),
  text: m.text,
  importance: m.importance,
  created_at: m.createdAt,
  last_used_at: m.lastUsedAt,
  uses: m.uses,
  expires_at: m.expiresAt,
  metadata: m.metadata === undefined ? null : JSON.stringify(m.metadata)
})

/** The statements whose plans matter (run by the repository, explained by the tests). */
export const queries = (sql: SqlClient.SqlClient) => ({
  /** One page of a namespace's vectors in index order, after `after` (keyset pagination). */
  vectorsByNamespace: (namespace: string, limit: number, after?: VectorRow) =>
    after === undefined
      ? sql<VectorRow>`SELECT id, agent, created_at, expires_at, vector FROM memories WHERE namespace = ${namespace}
          ORDER BY agent, expires_at, id LIMIT ${limit}`
      : sql<VectorRow>`SELECT id, agent, created_at, expires_at, vector FROM memories WHERE namespace = ${namespace}
          AND (agent, expires_at, id) > (${after.agent}, ${after.expires_at}, ${after.id})
          ORDER BY agent, expires_at, id LIMIT ${limit}`,
  evictionOrder: (namespace: string, agent: string, except: string, limit: number) =>
    sql<{ id: string }>`SELECT id FROM memories WHERE namespace = ${namespace} AND agent = ${agent}
      AND id <> ${except} ORDER BY expires_at, id LIMIT ${limit}`,
  expired: (now: number) =>
    sql<{ id: string; namespace: string }>`SELECT id, namespace FROM memories WHERE expires_at <= ${now}`,
  counts: () =>
    sql<{ namespace: string; agent: string; n: number }>`SELECT namespace, agent, COUNT(*) AS n
      FROM memories GROUP BY namespace, agent`
})

export class MemoriesRepo extends Effect.Service<MemoriesRepo>()("sluice/MemoriesRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const q = queries(sql)
    const decoded = (operation: string) => (rows: ReadonlyArray<unknown>) =>
      decodeRows(rows).pipe(
        Effect.map((list) => list.map(toMemory)),
        Effect.mapError((e) => new StorageError({ operation, reason: e.message, retryable: false, cause: e }))
      )

    const pins = sql<Pin>`SELECT namespace, model, dim FROM memory_namespaces`.pipe(storage("memories.pins"))
    const pin = (p: Pin, now: number) =>
      sql`INSERT INTO memory_namespaces ${sql.insert({ ...p, created_at: now })}`.pipe(
        Effect.asVoid,
        storage("memories.pin")
      )

    /** Inserts rows, 100 per statement (bulk loads). */
    const insertMany = (rows: ReadonlyArray<NewMemory>) =>
      Effect.forEach(chunks(rows, 100), (part) => sql`INSERT INTO memories ${sql.insert(part.map(toRow))}`, {
        discard: true
      }).pipe(storage("memories.insert"))

    const byIds = (ids: ReadonlyArray<string>) =>
      Effect.forEach(chunks(ids), (part) => sql`SELECT * FROM memories WHERE id IN ${sql.in(part)}`).pipe(
        storage("memories.byIds"),
        Effect.flatMap((parts) => decoded("memories.byIds")(parts.flat()))
      )

    /** Writes the usage fields back (a merge or a recall). */
    const updateUsage = (m: Memory) =>
      sql`UPDATE memories SET importance = ${m.importance}, last_used_at = ${m.lastUsedAt}, uses = ${m.uses},
        expires_at = ${m.expiresAt} WHERE id = ${m.id}`.pipe(Effect.asVoid, storage("memories.updateUsage"))

    const remove = (ids: ReadonlyArray<string>) =>
      Effect.forEach(chunks(ids), (part) => sql`DELETE FROM memories WHERE id IN ${sql.in(part)}`, {
        discard: true
      }).pipe(storage("memories.remove"))

    const evictionOrder = (namespace: string, agent: string, except: string, limit: number) =>
      q.evictionOrder(namespace, agent, except, limit).pipe(
        Effect.map((rows) => rows.map((r) => r.id)),
        storage("memories.evictionOrder")
      )

    /** A namespace's vectors, read in pages (the SQLite client does not stream). */
    const vectors = (namespace: string): Stream.Stream<VectorRow, StorageError> =>
      Stream.paginateChunkEffect(undefined as VectorRow | undefined, (after) =>
        q.vectorsByNamespace(namespace, pageSize, after).pipe(
          Effect.map(
            (rows) =>
              [
                Chunk.unsafeFromArray(rows),
                Option.fromNullable(rows.length < pageSize ? undefined : rows.at(-1))
              ] as const
          ),
          storage("memories.vectors")
        )
      )

    return {
      pins,
      pin,
      insert: (m: NewMemory) => insertMany([m]),
      insertMany,
      byIds,
      updateUsage,
      remove,
      evictionOrder,
      vectors,
      expired: (now: number) => q.expired(now).pipe(storage("memories.expired")),
      counts: q.counts().pipe(storage("memories.counts")),
      transaction: <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | StorageError, R> =>
        sql
          .withTransaction(effect)
          .pipe(Effect.mapError((e) => (e instanceof SqlError ? fromSqlError("memories.transaction")(e) : (e as E))))
    } as const
  })
}) {}
