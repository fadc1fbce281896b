/**
 * The SQL of episode leases (migration 5): which instance runs a running episode, until when, with which fencing
 * token. `Agent/EpisodeLeases.ts` holds the rules (lease length, renewal, takeover); `Agent/Episodes.ts` runs
 * `hold`/`release` inside a tick's transaction. This module only reads and writes, every failure a StorageError.
 *
 * Choices:
 * - Every change of ownership is one statement with its guard in the WHERE clause, and says whether it happened
 *   by the row it returns (RETURNING, SQLite >= 3.35 and PostgreSQL): two instances racing for a lease cannot
 *   both get a row back, whatever the isolation level (the row is locked by the first writer; PostgreSQL
 *   re-checks the WHERE of the second against the new row).
 * - `acquire` is an upsert (`ON CONFLICT DO UPDATE ... WHERE expires_at < now`): a new lease, or the lease of a
 *   dead owner; `takeOver` only updates an expired lease of a still running episode, so the scanner can never
 *   revive an episode that ended (its lease deleted) or was interrupted in the meantime.
 * - A takeover adds 1 to `fence` and keeps `cancel_requested`: a cancel asked while the owner was dead holds.
 * - `expire` (a handover at shutdown) sets `expires_at` to 0, not to the owner's `now`: expired on every instance's
 *   clock at once, however skewed; owner, fence and cancel flag stay, so the next owner's takeover is the usual one.
 * - Times are the instances' clocks in ms, passed in (`now`, `expiresAt`), so tests drive them with TestClock.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Option, Schema } from "effect"
import * as Rows from "./Rows.js"

/** A lease as stored. */
export const Lease = Schema.Struct({
  episodeId: Rows.column("episode_id", Schema.String),
  owner: Schema.String,
  expiresAt: Rows.column("expires_at", Rows.Int64),
  fence: Rows.Int64,
  cancelRequested: Rows.column(
    "cancel_requested",
    Schema.transform(Schema.Number, Schema.Boolean, { decode: (n) => n !== 0, encode: (b) => (b ? 1 : 0) })
  )
})
export interface Lease extends Schema.Schema.Type<typeof Lease> {}

/** Who holds a lease: the instance and the fencing token it got. */
export const Holder = Schema.Struct({ episodeId: Schema.String, owner: Schema.String, fence: Schema.Number })
export interface Holder extends Schema.Schema.Type<typeof Holder> {}

const Claim = Schema.Struct({
  episodeId: Schema.String,
  owner: Schema.String,
  now: Schema.Number,
  expiresAt: Schema.Number
})
/** An instance asking for a lease at `now`, to hold it until `expiresAt`. */
export interface Claim extends Schema.Schema.Type<typeof Claim> {}

const Renewal = Schema.Struct({ ...Holder.fields, expiresAt: Schema.Number })

export class LeasesRepo extends Effect.Service<LeasesRepo>()("sluice/LeasesRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const insert = Rows.void("leases.insert", {
      Request: Schema.Struct({ ...Holder.fields, expiresAt: Schema.Number }),
      execute: ({ episodeId, expiresAt, fence, owner }) =>
        sql`INSERT INTO episode_leases (episode_id, owner, expires_at, fence, cancel_requested)
          VALUES (${episodeId}, ${owner}, ${expiresAt}, ${fence}, 0)`
    })
    const acquire = Rows.findOne("leases.acquire", {
      Request: Claim,
      Result: Lease,
      execute: ({ episodeId, expiresAt, now, owner }) =>
        sql`INSERT INTO episode_leases (episode_id, owner, expires_at, fence, cancel_requested)
          VALUES (${episodeId}, ${owner}, ${expiresAt}, 1, 0)
          ON CONFLICT (episode_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
            fence = episode_leases.fence + 1
          WHERE episode_leases.expires_at < ${now}
          RETURNING *`
    })
    const takeOver = Rows.findOne("leases.takeOver", {
      Request: Claim,
      Result: Lease,
      execute: ({ episodeId, expiresAt, now, owner }) =>
        sql`UPDATE episode_leases SET owner = ${owner}, expires_at = ${expiresAt}, fence = fence + 1
          WHERE episode_id = ${episodeId} AND expires_at < ${now}
            AND EXISTS (SELECT 1 FROM episodes WHERE episodes.id = episode_leases.episode_id AND status = 'running')
          RETURNING *`
    })
    const renew = Rows.findOne("leases.renew", {
      Request: Renewal,
      Result: Lease,
      execute: ({ episodeId, expiresAt, fence, owner }) =>
        sql`UPDATE episode_leases SET expires_at = ${expiresAt}
          WHERE episode_id = ${episodeId} AND owner = ${owner} AND fence = ${fence} RETURNING *`
    })
    const release = Rows.findOne("leases.release", {
      Request: Holder,
      Result: Lease,
      execute: ({ episodeId, fence, owner }) =>
        sql`DELETE FROM episode_leases WHERE episode_id = ${episodeId} AND owner = ${owner} AND fence = ${fence}
          RETURNING *`
    })
    const expire = Rows.findOne("leases.expire", {
      Request: Holder,
      Result: Lease,
      execute: ({ episodeId, fence, owner }) =>
        sql`UPDATE episode_leases SET expires_at = 0
          WHERE episode_id = ${episodeId} AND owner = ${owner} AND fence = ${fence} RETURNING *`
    })
    const expired = Rows.findAll("leases.expired", {
      Request: Schema.Struct({ now: Schema.Number, limit: Schema.Number }),
      Result: Schema.Struct({ episodeId: Rows.column("episode_id", Schema.String) }),
      execute: ({ limit, now }) =>
        sql`SELECT l.episode_id FROM episode_leases l JOIN episodes e ON e.id = l.episode_id
          WHERE l.expires_at < ${now} AND e.status = 'running' ORDER BY l.expires_at LIMIT ${limit}`
    })

    return {
      /** A new lease, for an episode being started: run it in the transaction that inserts the episode. */
      insert: (episodeId: string, owner: string, fence: number, expiresAt: number) =>
        insert({ episodeId, owner, fence, expiresAt }),
      /** A new lease, or the lease of an owner whose lease expired before `now` (fence + 1); none while held. */
      acquire,
      /** The expired lease of a running episode (fence + 1); none when it is held, gone, or the episode ended. */
      takeOver,
      /** Extends the lease to `expiresAt` if `holder` still holds it; none when it does not (lost to a takeover). */
      renew: (holder: Holder, expiresAt: number) => renew({ ...holder, expiresAt }),
      /** Deletes the lease if `holder` still holds it; false when it does not. */
      release: (holder: Holder) => Effect.map(release(holder), Option.isSome),
      /** Ends the lease at once but keeps its row (a handover): any instance may take it over; false when lost. */
      expire: (holder: Holder) => Effect.map(expire(holder), Option.isSome),
      /** Asks the owner to stop the episode; returns the lease, none when no instance holds one. */
      requestCancel: Rows.findOne("leases.requestCancel", {
        Request: Schema.String,
        Result: Lease,
        execute: (id) => sql`UPDATE episode_leases SET cancel_requested = 1 WHERE episode_id = ${id} RETURNING *`
      }),
      get: Rows.findOne("leases.get", {
        Request: Schema.String,
        Result: Lease,
        execute: (id) => sql`SELECT * FROM episode_leases WHERE episode_id = ${id}`
      }),
      /** Running episodes whose lease expired before `now`, the longest expired first. */
      expired: (now: number, limit: number) =>
        Effect.map(expired({ now, limit }), (rows) => rows.map((r) => r.episodeId))
    } as const
  })
}) {}
