/**
 * What changed in a namespace's memories, for instances that keep an index of it in memory (migration 6): each
 * namespace counts its inserting transactions (`version`, every row stamped with it as `seq`) and its deleted rows
 * (`removed`). MemoriesRepo's writes keep the counters in the transaction of the change; VectorMemoryIndexer reads
 * them to follow the other instances' writes.
 *
 * Choices:
 * - Versions, not times: the insert's `UPDATE ... version = version + 1` holds the namespace's row until the commit,
 *   so a later version is always a later commit, and "rows with seq in (seen, version]" read after `version` is
 *   visible is every row inserted since, whatever the instances' clocks or the order their transactions started
 *   in. A cursor on `created_at` (a writer's clock, at the start of its transaction) could skip a row.
 * - Deletions as a count, not tombstones: `removed` changing says "look", and the reader then lists the
 *   namespace's ids (an index-only scan of memories_by_namespace) to drop what is gone. Nothing is written per
 *   deleted row and nothing needs pruning; the price, a scan of ids, is paid by an instance only after another one
 *   deleted in a namespace it has loaded (its sweep, a capacity eviction, a forget).
 * - Lock order: every transaction that changes memories updates its namespaces' rows first, one by one in name
 *   order, before it touches memory rows, so two of them never wait on each other in a cycle (PostgreSQL); on
 *   SQLite the first write takes the database's lock, with no upgrade from a read.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Array as Arr, Chunk, Effect, Option, Schema, Stream } from "effect"
import * as Rows from "./Rows.js"
import type { StorageError } from "./StorageError.js"

/** A namespace's counters: its inserting transactions and its deleted rows. */
export const Versions = Schema.Struct({ version: Rows.Int64, removed: Rows.Int64 })
export interface Versions extends Schema.Schema.Type<typeof Versions> {}

/** The index's view of a row: enough to add it to an in-memory index (the vector still a blob). */
export const VectorRow = Schema.Struct({
  id: Schema.String,
  agent: Schema.String,
  created_at: Rows.Int64,
  expires_at: Rows.Int64,
  vector: Schema.Uint8ArrayFromSelf
})
export interface VectorRow extends Schema.Schema.Type<typeof VectorRow> {}

/** A row inserted since a version, with that version. */
export const AddedRow = Schema.Struct({ ...VectorRow.fields, seq: Rows.Int64 })
export interface AddedRow extends Schema.Schema.Type<typeof AddedRow> {}

const pageSize = 1000
const chunkSize = 500

/** What a delete did in one namespace: the ids it deleted and the namespace's `removed` counter after it. */
export interface Removal {
  readonly namespace: string
  readonly ids: ReadonlyArray<string>
  readonly removed: number
}

/** Rows grouped by namespace, the namespaces in name order (the lock order). */
export const byNamespace = <A extends { readonly namespace: string }>(rows: ReadonlyArray<A>) => {
  const groups = new Map<string, Array<A>>()
  for (const row of rows) {
    const group = groups.get(row.namespace)
    if (group === undefined) groups.set(row.namespace, [row])
    else group.push(row)
  }
  return [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/** A statement per chunk of ids, the rows it returns together. */
const chunked = <A, E, R>(
  ids: ReadonlyArray<string>,
  run: (part: Array<string>) => Effect.Effect<ReadonlyArray<A>, E, R>
) => Effect.map(Effect.forEach(Arr.chunksOf(ids, chunkSize), run), (parts) => parts.flat())

/** The statements whose plans matter (explained by the tests). */
export const queries = (sql: SqlClient.SqlClient) => ({
  /** One page of the rows of `namespace` inserted in versions (after, upTo], after the row `from` (keyset). */
  added: (namespace: string, after: number, upTo: number, limit: number, from?: { seq: number; id: string }) =>
    from === undefined
      ? sql<AddedRow>`SELECT id, agent, created_at, expires_at, seq, vector FROM memories
          WHERE namespace = ${namespace} AND seq > ${after} AND seq <= ${upTo} ORDER BY seq, id LIMIT ${limit}`
      : sql<AddedRow>`SELECT id, agent, created_at, expires_at, seq, vector FROM memories
          WHERE namespace = ${namespace} AND (seq, id) > (${from.seq}, ${from.id}) AND seq <= ${upTo}
          ORDER BY seq, id LIMIT ${limit}`,
  ids: (namespace: string) => sql<{ id: string }>`SELECT id FROM memories WHERE namespace = ${namespace}`
})

export const make = (sql: SqlClient.SqlClient) => {
  const q = queries(sql)
  const state = Rows.findOne("memories.versions", {
    Request: Schema.String,
    Result: Versions,
    execute: (namespace) => sql`SELECT version, removed FROM memory_namespaces WHERE namespace = ${namespace}`
  })
  const bump = Rows.findOne("memories.bump", {
    Request: Schema.Struct({ namespace: Schema.String, inserted: Schema.Number, removed: Schema.Number }),
    Result: Versions,
    execute: (r) =>
      sql`UPDATE memory_namespaces SET version = version + ${r.inserted}, removed = removed + ${r.removed}
        WHERE namespace = ${r.namespace} RETURNING version, removed`
  })
  const page = Rows.findAll("memories.added", {
    Request: Schema.Struct({
      namespace: Schema.String,
      after: Schema.Number,
      upTo: Schema.Number,
      from: Schema.UndefinedOr(Schema.Struct({ seq: Schema.Number, id: Schema.String }))
    }),
    Result: AddedRow,
    execute: (r) => q.added(r.namespace, r.after, r.upTo, pageSize, r.from)
  })
  const ids = Rows.findAll("memories.ids", {
    Request: Schema.String,
    Result: Schema.Struct({ id: Schema.String }),
    execute: q.ids
  })

  const located = Rows.findAll("memories.locate", {
    Request: Schema.Array(Schema.String),
    Result: Schema.Struct({ id: Schema.String, namespace: Schema.String }),
    execute: (ids) => chunked(ids, (part) => sql`SELECT id, namespace FROM memories WHERE id IN ${sql.in(part)}`)
  })
  const deleteIn = Rows.findAll("memories.remove", {
    Request: Schema.Struct({ namespace: Schema.String, ids: Schema.Array(Schema.String) }),
    Result: Schema.Struct({ id: Schema.String }),
    execute: ({ ids, namespace }) =>
      chunked(
        ids,
        (part) => sql`DELETE FROM memories WHERE namespace = ${namespace} AND id IN ${sql.in(part)} RETURNING id`
      )
  })

  /** Adds to the namespace's counters (in the caller's transaction, first); zeros when it is not pinned. */
  const count = (namespace: string, inserted: number, removed: number) =>
    Effect.map(
      bump({ namespace, inserted, removed }),
      Option.getOrElse((): Versions => ({ version: 0, removed: 0 }))
    )

  /** Deletes rows (run it in a transaction): per namespace, its row updated first, then its rows, then counted. */
  const remove = (ids: ReadonlyArray<string>) =>
    Effect.flatMap(located(ids), (found) =>
      Effect.forEach(byNamespace(found), ([namespace, rows]) =>
        Effect.gen(function* () {
          yield* count(namespace, 0, 0)
          const deleted = (yield* deleteIn({ namespace, ids: rows.map((r) => r.id) })).map((r) => r.id)
          const { removed } = yield* count(namespace, 0, deleted.length)
          return { namespace, ids: deleted, removed } satisfies Removal
        })
      )
    )

  return {
    /** The namespace's counters as committed now; none when it is not pinned. */
    state,
    count,
    remove,
    /** The rows inserted in versions (after, upTo], in pages. */
    added: (namespace: string, after: number, upTo: number): Stream.Stream<AddedRow, StorageError> =>
      Stream.paginateChunkEffect(undefined as AddedRow | undefined, (last) =>
        Effect.map(
          page({ namespace, after, upTo, from: last === undefined ? undefined : { seq: last.seq, id: last.id } }),
          (rows) =>
            [
              Chunk.unsafeFromArray(rows),
              Option.fromNullable(rows.length < pageSize ? undefined : rows.at(-1))
            ] as const
        )
      ),
    /** Every id of the namespace (an index-only scan). */
    ids: (namespace: string) => Effect.map(ids(namespace), (rows) => new Set(rows.map((r) => r.id)))
  } as const
}
