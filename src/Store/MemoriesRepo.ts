/**
 * The memories tables (migration 0003): namespace pins and memories with float32 vectors.
 *
 * Choices:
 * - Vectors are stored as the caller gave them (not normalised), float32 little-endian, whatever the host's byte
 *   order; reads on a little-endian host with an aligned buffer are a view, otherwise a copy through a DataView.
 * - Rows are read and written as `Rows.ts` says (SqlSchema, one codec per table): metadata is JSON in a TEXT column
 *   (NULL when absent), the vector a `Vector` blob (BYTEA on PostgreSQL, read back as a Buffer), times `Rows.Int64`;
 *   a row that does not decode is a StorageError.
 * - Every query has an index (see the migration); the statements are exported as `queries` so a test can run
 *   EXPLAIN QUERY PLAN on exactly what the repository runs.
 * - Lists of ids are sent in chunks of 500 (far below SQLite's and PostgreSQL's parameter limits); a namespace's
 *   vectors are read in pages of 1000 along the index (keyset on (agent, expires_at, id), a row-value comparison
 *   that SQLite and PostgreSQL both run as an index range).
 * - Inserts and deletes keep the namespace's counters (MemoriesChanges.ts) in their own transaction, so other
 *   instances' indexes can follow them: an insert stamps its rows with the namespace's next version, a delete
 *   counts what it deleted per namespace and says so (`Removal`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Array as Arr, Chunk, Effect, Option, Schema, Stream } from "effect"
import { endianness } from "node:os"
import * as Changes from "./MemoriesChanges.js"
import { VectorRow } from "./MemoriesChanges.js"
import * as Rows from "./Rows.js"
import type { StorageError } from "./StorageError.js"

export const Metadata = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type Metadata = typeof Metadata.Type
export { type Removal, VectorRow } from "./MemoriesChanges.js"

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

/** A namespace's pin: the embedding model and dimension of every vector in it. */
export const Pin = Schema.Struct({ namespace: Schema.String, model: Schema.String, dim: Schema.Number })
export interface Pin extends Schema.Schema.Type<typeof Pin> {}

const MemoryRow = Schema.Struct({
  ...Memory.fields,
  createdAt: Rows.column("created_at", Rows.Int64),
  lastUsedAt: Rows.column("last_used_at", Rows.Int64),
  expiresAt: Rows.column("expires_at", Rows.Int64),
  /** `Memory.metadata` may be present and undefined: written as NULL too. */
  metadata: Rows.nullable("metadata", Schema.UndefinedOr(Schema.parseJson(Metadata)))
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

const isVector = (u: unknown): u is ArrayLike<number> =>
  Array.isArray(u) || (ArrayBuffer.isView(u) && !(u instanceof DataView))

/** A vector as a float32 little-endian blob (BLOB on SQLite, BYTEA on PostgreSQL). */
const Vector = Schema.transform(Schema.Uint8ArrayFromSelf, Schema.declare(isVector, { identifier: "Vector" }), {
  strict: true,
  decode: decodeVector,
  encode: encodeVector
})

/** A new memory's row; `dim` (the vector's length) is added when it is written. */
const NewMemoryRow = Schema.Struct({ ...MemoryRow.fields, model: Schema.String, vector: Vector })

const NamespaceRow = Schema.Struct({ ...Pin.fields, createdAt: Rows.column("created_at", Rows.Int64) })

/** A memory's columns, the vector aside (a recall reads k rows: no need for their 3 KB vectors). */
const memoryColumns = "id, agent, namespace, text, importance, created_at, last_used_at, uses, expires_at, metadata"

const chunkSize = 500
const pageSize = 1000

/** The statements whose plans matter (run by the repository, explained by the tests). */
export const queries = (sql: SqlClient.SqlClient) => ({
  /** One page of a namespace's vectors in index order, after `after` (keyset pagination). */
  vectorsByNamespace: (namespace: string, limit: number, after?: typeof VectorRow.Encoded) =>
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
    const changes = Changes.make(sql)
    const transaction = Rows.transaction(sql, "memories.transaction")

    const pins = Rows.findAll("memories.pins", {
      Request: Schema.Void,
      Result: Pin,
      execute: () => sql`SELECT namespace, model, dim FROM memory_namespaces`
    })(undefined)
    const pinNamespace = Rows.void("memories.pin", {
      Request: NamespaceRow,
      execute: (row) => sql`INSERT INTO memory_namespaces ${sql.insert(row)}`
    })

    const insertRows = Rows.void("memories.insert", {
      Request: Schema.Struct({ seq: Schema.Number, rows: Schema.Array(NewMemoryRow) }),
      execute: ({ rows, seq }) =>
        Effect.forEach(
          Arr.chunksOf(rows, 100),
          (part) =>
            sql`INSERT INTO memories ${sql.insert(part.map((row) => ({ ...row, dim: row.vector.byteLength >>> 2, seq })))}`,
          { discard: true }
        )
    })

    /** Inserts rows, 100 per statement, each namespace's under its next version; returns the last version. */
    const insertMany = (rows: ReadonlyArray<NewMemory>) =>
      transaction(
        Effect.reduce(Changes.byNamespace(rows), 0, (_, [namespace, part]) =>
          Effect.flatMap(changes.count(namespace, 1, 0), ({ version }) =>
            Effect.as(insertRows({ seq: version, rows: part }), version)
          )
        )
      )

    const byIds = Rows.findAll("memories.byIds", {
      Request: Schema.Array(Schema.String),
      Result: MemoryRow,
      execute: (ids) =>
        Effect.map(
          Effect.forEach(
            Arr.chunksOf(ids, chunkSize),
            (part) => sql`SELECT ${sql.literal(memoryColumns)} FROM memories WHERE id IN ${sql.in(part)}`
          ),
          (parts) => parts.flat()
        )
    })

    /** Writes the usage fields back (a merge or a recall). */
    const updateUsage = Rows.void("memories.updateUsage", {
      Request: MemoryRow.pick("id", "importance", "lastUsedAt", "uses", "expiresAt"),
      execute: (m) =>
        sql`UPDATE memories SET importance = ${m.importance}, last_used_at = ${m.last_used_at}, uses = ${m.uses},
          expires_at = ${m.expires_at} WHERE id = ${m.id}`
    })

    const evictionOrder = Rows.findAll("memories.evictionOrder", {
      Request: Schema.Struct({
        namespace: Schema.String,
        agent: Schema.String,
        except: Schema.String,
        limit: Schema.Number
      }),
      Result: Schema.Struct({ id: Schema.String }),
      execute: (r) => q.evictionOrder(r.namespace, r.agent, r.except, r.limit)
    })

    const page = Rows.findAll("memories.vectors", {
      Request: Schema.Struct({ namespace: Schema.String, after: Schema.UndefinedOr(VectorRow) }),
      Result: VectorRow,
      execute: (r) => q.vectorsByNamespace(r.namespace, pageSize, r.after)
    })

    /** A namespace's vectors, read in pages (the SQLite client does not stream). */
    const vectors = (namespace: string): Stream.Stream<VectorRow, StorageError> =>
      Stream.paginateChunkEffect(undefined as VectorRow | undefined, (after) =>
        Effect.map(
          page({ namespace, after }),
          (rows) =>
            [
              Chunk.unsafeFromArray(rows),
              Option.fromNullable(rows.length < pageSize ? undefined : rows.at(-1))
            ] as const
        )
      )

    return {
      pins,
      pin: (pin: Pin, now: number) => pinNamespace({ ...pin, createdAt: now }),
      /** Inserts one memory; returns its `seq`, the namespace's version it was inserted under. */
      insert: (m: NewMemory) => insertMany([m]),
      insertMany,
      byIds,
      updateUsage,
      evictionOrder: (namespace: string, agent: string, except: string, limit: number) =>
        Effect.map(evictionOrder({ namespace, agent, except, limit }), (rows) => rows.map((r) => r.id)),
      vectors,
      expired: Rows.findAll("memories.expired", {
        Request: Schema.Number,
        Result: Schema.Struct({ id: Schema.String, namespace: Schema.String }),
        execute: q.expired
      }),
      counts: Rows.findAll("memories.counts", {
        Request: Schema.Void,
        Result: Schema.Struct({ namespace: Schema.String, agent: Schema.String, n: Rows.Int64 }),
        execute: q.counts
      })(undefined),
      /** Deletes rows; per namespace, what it deleted and its `removed` counter after it. */
      remove: (ids: ReadonlyArray<string>) => transaction(changes.remove(ids)),
      /** The namespace's counters now; the rows inserted since a version; its ids (MemoriesChanges.ts). */
      versions: changes.state,
      added: changes.added,
      ids: changes.ids,
      transaction
    } as const
  })
}) {}
