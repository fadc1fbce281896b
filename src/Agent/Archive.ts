/**
 * Archival: ended episodes that are old (not updated for `olderThan`) or beyond the newest `keepPerAgent` of
 * their agent move out of the hot tables into one compressed file each (`EpisodesArchiveFile.ts`) plus a row of
 * `archive_index`; `restore` brings one back identical. A scoped sweep runs the default policy periodically,
 * and `sluice archive` runs it once (or dry).
 *
 * Choices:
 * - Running episodes are never archived; an interrupted one is (it is restored before it can be resumed).
 * - Per episode: read the rows, write the file durably, then in one transaction delete the hot rows and write
 *   the index row. The delete only matches the episode as it was read (same `updated_at`, still ended), so one
 *   that changed meanwhile stays hot. On any failure the hot rows stay and the new file is removed (unless a
 *   concurrent run, e.g. the CLI beside the server's sweep, archived the episode meanwhile: same bytes, its file);
 *   a crash between file and transaction leaves a stray file that the next run overwrites.
 * - One episode failing does not stop the run: the report lists it under `failed`.
 * - A dry run reads only: no file, directory or row is written.
 * - Restore checks the file's sha256 against the index, re-inserts the rows as they were read, drops the index
 *   row in the same transaction, then removes the file.
 */
import { Clock, Duration, Effect, Either, Option, SubscriptionRef } from "effect"
import { type Due, EpisodesRepo } from "../Store/EpisodesRepo.js"
import { StorageError } from "../Store/StorageError.js"
import * as ArchiveFile from "./EpisodesArchiveFile.js"
import { EpisodeNotFound } from "./EpisodesError.js"
import type { ArchiveEntry, HotStatus } from "../Domain/Episode.js"

/** Which ended episodes a run archives: older than `olderThan`, or beyond the newest `keepPerAgent` per agent. */
export interface Policy {
  readonly olderThan?: Duration.DurationInput | undefined
  readonly keepPerAgent?: number | undefined
  /** At most this many episodes per run (default 1000). */
  readonly limit?: number | undefined
}

export interface Options {
  /** The data directory; files go to `<dataDir>/archive/`. */
  readonly dataDir: string
  /** The policy of a run that names neither `olderThan` nor `keepPerAgent` (default: older than 30 days). */
  readonly policy?: Policy | undefined
  /** Sweep with the default policy this often; no sweep when absent. */
  readonly sweepEvery?: Duration.DurationInput | undefined
}

export const defaultPolicy: Policy = { olderThan: "30 days" }

/** An episode archived (or, on a dry run, that would be). `bytes` is the file size, absent on a dry run. */
export interface Moved {
  readonly id: string
  readonly agent: string
  readonly status: HotStatus
  readonly ticks: number
  readonly updatedAt: number
  readonly file: string
  readonly bytes?: number | undefined
}

export interface Report {
  readonly dryRun: boolean
  readonly moved: ReadonlyArray<Moved>
  readonly failed: ReadonlyArray<{ readonly id: string; readonly reason: string }>
}

const movedOf = (due: Due): Moved => ({
  ...{ id: due.id, agent: due.agent, status: due.status, ticks: due.ticks },
  ...{ updatedAt: due.updated_at, file: ArchiveFile.fileFor(due.id) }
})

export class Archive extends Effect.Service<Archive>()("sluice/Archive", {
  scoped: (options: Options) =>
    Effect.gen(function* () {
      const repo = yield* EpisodesRepo
      const fallback = options.policy ?? defaultPolicy
      const lastSweep = yield* SubscriptionRef.make(Option.none<Report>())
      const pathOf = (file: string) => ArchiveFile.pathOf(options.dataDir, file)

      const changed = (id: string) =>
        new StorageError({
          operation: "archive.move",
          reason: `episode ${id} changed while being archived`,
          retryable: true
        })

      /** Removes a file written for an archive that did not happen, unless another run archived it meanwhile. */
      const discard = (id: string, file: string) =>
        Effect.flatMap(repo.entry(id), (entry) =>
          Option.isSome(entry) ? Effect.void : ArchiveFile.remove(pathOf(file))
        ).pipe(Effect.ignore)

      /** Moves one episode out of the hot tables (see the module comment). */
      const moveOne = (due: Due, now: number) =>
        Effect.gen(function* () {
          const episode = yield* Effect.flatMap(repo.rows.episode(due.id), (row) =>
            Option.isSome(row) ? Effect.succeed(row.value) : Effect.fail(changed(due.id))
          )
          const ticks = yield* repo.rows.ticks(due.id)
          const bytes = yield* ArchiveFile.encode({ episode, ticks })
          const moved = { ...movedOf(due), bytes: bytes.byteLength }
          const entry: ArchiveEntry = {
            ...{ episodeId: due.id, agent: due.agent, status: "archived", finalStatus: due.status },
            ...{ createdAt: Number(episode.created_at), updatedAt: Number(episode.updated_at), file: moved.file },
            ...{ sha256: ArchiveFile.sha256(bytes), bytes: bytes.byteLength, tickCount: ticks.length, archivedAt: now }
          }
          yield* ArchiveFile.writeDurably(pathOf(moved.file), bytes)
          const swap = Effect.gen(function* () {
            if (!(yield* repo.rows.delete(due.id, entry.updatedAt))) return yield* Effect.fail(changed(due.id))
            yield* repo.insertEntry(entry)
          })
          yield* repo
            .transaction("archive.move")(swap)
            .pipe(Effect.tapError(() => discard(due.id, moved.file)))
          return moved
        }).pipe(Effect.withSpan("Archive.moveOne", { attributes: { episode: due.id } }))

      /** Archives what the policy (or the default one) selects; `dryRun` only reports it. */
      const archive = Effect.fn("Archive.archive")(function* (run: Policy & { readonly dryRun?: boolean } = {}) {
        const policy = run.olderThan === undefined && run.keepPerAgent === undefined ? fallback : run
        const now = yield* Clock.currentTimeMillis
        const before = policy.olderThan === undefined ? undefined : now - Duration.toMillis(policy.olderThan)
        const limit = run.limit ?? policy.limit ?? 1000
        const due = yield* repo.due({ before, keepPerAgent: policy.keepPerAgent, limit })
        if (run.dryRun === true) return { dryRun: true, moved: due.map(movedOf), failed: [] } satisfies Report
        const results = yield* Effect.forEach(due, (d) => Effect.either(moveOne(d, now)))
        const report: Report = {
          dryRun: false,
          moved: results.filter(Either.isRight).map((r) => r.right),
          failed: results.flatMap((r, i) => (Either.isLeft(r) ? [{ id: due[i]!.id, reason: r.left.message }] : []))
        }
        return report
      })

      /** Brings an archived episode back into the hot tables, rows identical to when it left. */
      const restore = Effect.fn("Archive.restore")(function* (id: string) {
        const found = yield* repo.entry(id)
        if (Option.isNone(found)) return yield* new EpisodeNotFound({ id, where: "archive" })
        const entry = found.value
        const unusable = (problem: string) =>
          new StorageError({ operation: "archive.restore", reason: `${entry.file}: ${problem}`, retryable: false })
        const bytes = yield* ArchiveFile.read(pathOf(entry.file))
        if (ArchiveFile.sha256(bytes) !== entry.sha256) return yield* unusable("checksum mismatch")
        const rows = yield* ArchiveFile.decode(bytes)
        const problem = mismatch(entry, rows)
        if (problem !== undefined) return yield* unusable(problem)
        yield* repo.transaction("archive.restore")(
          Effect.zipRight(repo.rows.insert(rows.episode, rows.ticks), repo.deleteEntry(id))
        )
        yield* ArchiveFile.remove(pathOf(entry.file)).pipe(
          Effect.catchAll((e) => Effect.logWarning(`archive: restored ${id} but kept its file: ${e.message}`))
        )
        return yield* Effect.flatMap(repo.episode(id), (e) => Effect.orDie(e))
      })

      const sweep = archive().pipe(
        Effect.tap((report) => SubscriptionRef.set(lastSweep, Option.some(report))),
        Effect.tap((r) => Effect.logInfo(`archive sweep: ${r.moved.length} moved, ${r.failed.length} failed`)),
        Effect.catchAllCause((cause) => Effect.logWarning("archive sweep failed", cause))
      )
      if (options.sweepEvery !== undefined) {
        yield* Effect.sleep(options.sweepEvery).pipe(Effect.zipRight(sweep), Effect.forever, Effect.forkScoped)
      }

      return {
        archive,
        restore,
        /** The report of the latest sweep, none before the first; `changes` streams each one. */
        lastSweep,
        /** The index row of an archived episode. */
        entry: (id: string) => repo.entry(id),
        /** Archived episodes, latest first (default limit 100). */
        entries: (query: { readonly agent?: string; readonly limit?: number } = {}) =>
          repo.entries(query.agent, query.limit ?? 100)
      } as const
    }),
  dependencies: [EpisodesRepo.Default]
}) {}

const mismatch = (entry: ArchiveEntry, rows: ArchiveFile.ArchivedRows): string | undefined =>
  rows.episode.id !== entry.episodeId
    ? `holds episode ${String(rows.episode.id)}`
    : rows.ticks.length !== entry.tickCount
      ? `holds ${rows.ticks.length} ticks, the index says ${entry.tickCount}`
      : undefined
