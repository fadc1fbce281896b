/**
 * `sluice archive`: moves ended episodes older than `--older-than` days (or beyond the newest `--keep-per-agent`
 * of each agent) out of the hot tables into compressed files under `<data-dir>/archive/`, or brings one back
 * with `--restore <episode-id>`. `--dry-run` prints what would happen and changes nothing: not even a missing
 * database is created.
 */
import { Command, Options } from "@effect/cli"
import { Config, Console, Effect, Layer, Option } from "effect"
import { Archive, type Moved, type Report } from "../Agent/Archive.js"
import * as Store from "../Store/Store.js"

const dataDir = Options.text("data-dir").pipe(
  Options.withDescription("the data directory (SLUICE_DATA_DIR)"),
  Options.withFallbackConfig(Config.string("SLUICE_DATA_DIR")),
  Options.withDefault("./data")
)
const olderThan = Options.integer("older-than").pipe(
  Options.withDescription("archive ended episodes not updated for this many days"),
  Options.withDefault(30)
)
const keepPerAgent = Options.integer("keep-per-agent").pipe(
  Options.withDescription("also archive ended episodes beyond this many newest per agent"),
  Options.optional
)
const dryRun = Options.boolean("dry-run").pipe(Options.withDescription("print what would move; change nothing"))
const restore = Options.text("restore").pipe(
  Options.withDescription("bring this archived episode back into the hot tables"),
  Options.optional
)

export interface Flags {
  readonly dataDir: string
  readonly olderThan: number
  readonly keepPerAgent: Option.Option<number>
  readonly dryRun: boolean
  readonly restore: Option.Option<string>
}

/** Rows as aligned columns, the first row the header. */
export const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0))) ?? []
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}

const summary = (report: Report, flags: Flags): string => {
  const policy = `older than ${flags.olderThan} days${Option.match(flags.keepPerAgent, {
    onNone: () => "",
    onSome: (n) => ` or beyond ${n} per agent`
  })}`
  const verb = report.dryRun ? "would be archived" : "archived"
  const head = `${report.moved.length} episode(s) ${verb} from ${flags.dataDir} (${policy})`
  const row = (m: Moved) => [m.id, m.agent, m.status, String(m.ticks), new Date(m.updatedAt).toISOString(), m.file]
  const moved =
    report.moved.length === 0
      ? []
      : [table([["EPISODE", "AGENT", "STATUS", "TICKS", "UPDATED", "FILE"], ...report.moved.map(row)])]
  const failed = report.failed.map((f) => `failed: ${f.id}: ${f.reason}`)
  return [head, ...moved, ...failed].join("\n")
}

const archiveRun = (flags: Flags) =>
  Effect.gen(function* () {
    if (flags.olderThan < 0 || Option.exists(flags.keepPerAgent, (n) => n < 0)) {
      return yield* Effect.fail(new Error("--older-than and --keep-per-agent must not be negative"))
    }
    const archive = yield* Archive
    const report = yield* archive.archive({
      olderThan: `${flags.olderThan} days`,
      keepPerAgent: Option.getOrUndefined(flags.keepPerAgent),
      dryRun: flags.dryRun
    })
    yield* Console.log(summary(report, flags))
    if (report.failed.length > 0) {
      return yield* Effect.fail(new Error(`${report.failed.length} episode(s) could not be archived`))
    }
  })

const restoreRun = (id: string, flags: Flags) =>
  Effect.gen(function* () {
    const archive = yield* Archive
    if (flags.dryRun) {
      const entry = yield* archive.entry(id)
      return yield* Console.log(
        Option.match(entry, {
          onNone: () => `episode ${id} is not in the archive`,
          onSome: (e) => `would restore ${id} (${e.agent}, ${e.finalStatus}, ${e.tickCount} ticks) from ${e.file}`
        })
      )
    }
    const episode = yield* archive.restore(id)
    yield* Console.log(`restored ${episode.id} (${episode.agent}, ${episode.status}, ${episode.ticks} ticks)`)
  })

/** Runs the command's work for parsed flags (also what the tests call). */
export const runArchive = (flags: Flags) =>
  Effect.gen(function* () {
    const at = yield* Store.location(flags.dataDir)
    if (!Store.exists(at)) return yield* Console.log(`no database at ${Store.describe(at)}: nothing to archive`)
    const layer = Archive.Default({ dataDir: flags.dataDir }).pipe(
      Layer.provide(Store.layerAt(at, { dataDir: flags.dataDir }))
    )
    const work = Option.match(flags.restore, {
      onNone: () => archiveRun(flags),
      onSome: (id) => restoreRun(id, flags)
    })
    return yield* Effect.provide(work, layer)
  })

export const archive = Command.make("archive", { dataDir, olderThan, keepPerAgent, dryRun, restore }, runArchive).pipe(
  Command.withDescription("Move old agent episodes to compressed files (or --restore one); --dry-run changes nothing")
)
