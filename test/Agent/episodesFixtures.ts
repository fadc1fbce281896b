/** Shared test helpers for episodes and the archive: layers over a given database, ticks, raw rows. */
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Archive, type Options } from "../../src/Agent/Archive.js"
import { Episodes } from "../../src/Agent/Episodes.js"
import type { Tick } from "../../src/Domain/Episode.js"

export const tempDir = () => mkdtempSync(join(tmpdir(), "sluice-archive-"))

/** Episodes and Archive (files under `dataDir`) over `store`. */
export const layerOn = <E, R>(options: Options, store: Layer.Layer<SqlClient.SqlClient, E, R>) =>
  Layer.mergeAll(Episodes.Default, Archive.Default(options)).pipe(Layer.provideMerge(store))

/** A tick with a bit of everything (tool calls, unicode, null-ish fields). */
export const tick = (episodeId: string, n: number, overrides: Partial<Tick> = {}): Tick => ({
  episodeId,
  n,
  startedAt: 1_000 * n,
  durationMs: 250 + n,
  inputs: [{ topic: "inbox", payload: { text: `event ${n} — é ✓`, at: n } }],
  recalled: [`mem-${n}`, "mem-0"],
  messages: [
    { role: "user", content: `step ${n}` },
    {
      role: "assistant",
      content: "",
      tool_calls: [{ function: { name: "search", arguments: { q: "weather", page: n } } }]
    },
    { role: "tool", content: '{"temp":21.5}', tool_name: "search" }
  ],
  toolCalls: [{ name: "search", arguments: { q: "weather", page: n }, result: { temp: 21.5, ok: true } }],
  tokens: 10 * n,
  budget: { calls: n, tokens: 10 * n, elapsedMs: 12.5 },
  outcome: "ok",
  ...overrides
})

/** A tick without budget use (the field absent, as a tick that never reached the model writes it). */
export const withoutBudget = ({ budget: _, ...rest }: Tick): Tick => rest

/** Every row of the episode tables and the archive index, in a stable order. */
export const snapshot = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return {
    episodes: yield* sql`SELECT * FROM episodes ORDER BY id`,
    ticks: yield* sql`SELECT * FROM ticks ORDER BY episode_id, n`,
    index: yield* sql`SELECT * FROM archive_index ORDER BY episode_id`
  }
})

/** The raw rows of one episode. */
export const rowsOf = (id: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return {
      episode: yield* sql`SELECT * FROM episodes WHERE id = ${id}`,
      ticks: yield* sql`SELECT * FROM ticks WHERE episode_id = ${id} ORDER BY n`
    }
  })

/** Every file under `dir` with its bytes (base64), for "nothing changed" checks. */
export const files = (dir: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const path = join(at, name)
      if (statSync(path).isDirectory()) walk(path)
      else out[path] = readFileSync(path).toString("base64")
    }
  }
  walk(dir)
  return out
}
