/**
 * The numbered migrations, applied in order and recorded in `effect_sql_migrations`. Each creates the tables of
 * one area and every index its repository's queries need. Numbers are assigned per area: 1 episodes + ticks +
 * archive index, 2 events + dead letters, 3 memories, 4 api keys, 5 episode leases, 6 memory versions. The
 * response cache lives in memory (Llm/ResponseCache.ts) and has no table.
 */
import { SqliteMigrator } from "@effect/sql-sqlite-node"
import episodes from "./0001_episodes.js"
import events from "./0002_events.js"
import memories from "./0003_memories.js"
import apiKeys from "./0004_api_keys.js"
import episodeLeases from "./0005_episode_leases.js"
import memoryVersions from "./0006_memory_versions.js"

export const migrations = SqliteMigrator.fromRecord({
  "1_episodes": episodes,
  "2_events": events,
  "3_memories": memories,
  "4_api_keys": apiKeys,
  "5_episode_leases": episodeLeases,
  "6_memory_versions": memoryVersions
})
