/**
 * The settings of the health checks and of the startup validation, their environment variables and their
 * defaults, in one place. Both read the same requirements (required models, free disk), so that what startup
 * refuses to run without is what readiness later watches.
 */
import { Config, Duration, Option } from "effect"
import { dataDir, splitHosts } from "../Config.js"

/** The defaults, visible in one place. */
export const defaults = {
  interval: Duration.seconds(10),
  timeout: Duration.seconds(2),
  minFreeDiskMb: 100,
  /** A queue this full (share of its capacity) is degraded; a full one is down. */
  queueDegradedShare: 0.8,
  /** The longest wait in a scheduler queue before the scheduler counts as degraded, then down. */
  queueWaitDegraded: Duration.seconds(5),
  queueWaitDown: Duration.seconds(30),
  /** Heap or RSS above this share of its limit is degraded. */
  memoryDegradedShare: 0.9
} as const

/** The models Sluice must find on its backends. Names are compared as Ollama does (`llama3.2` = `llama3.2:latest`). */
export interface Requirements {
  /** Chat/generate models (`SLUICE_REQUIRED_MODELS`, comma-separated; none by default). */
  readonly chatModels: ReadonlyArray<string>
  /** Embedding models (`SLUICE_REQUIRED_EMBED_MODELS`, comma-separated; none by default). */
  readonly embedModels: ReadonlyArray<string>
}

/** Memory and disk limits; an absent limit is only reported, never enforced. */
export interface Limits {
  /** `SLUICE_MAX_HEAP_MB`; V8's own heap limit when absent. */
  readonly maxHeapMb?: number | undefined
  /** `SLUICE_MAX_RSS_MB`. */
  readonly maxRssMb?: number | undefined
  /** `SLUICE_MIN_FREE_DISK_MB` (default 100): free space the data directory needs. */
  readonly minFreeDiskMb: number
}

export interface Settings {
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  readonly dataDir: string
  readonly requirements: Requirements
  readonly limits: Limits
}

const models = (name: string) =>
  Config.string(name).pipe(Config.map(splitHosts), Config.withDefault<ReadonlyArray<string>>([]))

export const requirements: Config.Config<Requirements> = Config.all({
  chatModels: models("SLUICE_REQUIRED_MODELS"),
  embedModels: models("SLUICE_REQUIRED_EMBED_MODELS")
})

const optionalMb = (name: string) => Config.option(Config.number(name)).pipe(Config.map(Option.getOrUndefined))

export const limits: Config.Config<Limits> = Config.all({
  maxHeapMb: optionalMb("SLUICE_MAX_HEAP_MB"),
  maxRssMb: optionalMb("SLUICE_MAX_RSS_MB"),
  minFreeDiskMb: Config.number("SLUICE_MIN_FREE_DISK_MB").pipe(Config.withDefault(defaults.minFreeDiskMb))
})

/**
 * `SLUICE_HEALTH_INTERVAL` (10 seconds), `SLUICE_HEALTH_TIMEOUT` (2 seconds), `SLUICE_DATA_DIR`, the
 * requirements and the limits.
 */
export const settings: Config.Config<Settings> = Config.all({
  interval: Config.duration("SLUICE_HEALTH_INTERVAL").pipe(Config.withDefault(defaults.interval)),
  timeout: Config.duration("SLUICE_HEALTH_TIMEOUT").pipe(Config.withDefault(defaults.timeout)),
  dataDir,
  requirements,
  limits
})
