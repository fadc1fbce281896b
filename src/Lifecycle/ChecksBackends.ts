/**
 * The startup checks of the backends: every configured Ollama answers, its version is supported, the required
 * chat and embedding models are there, stored vector memory fits the dimension its embedding model reports, and
 * a warning when Sluice would serve simulated models.
 *
 * What is checked is what `serve` would talk to (Lifecycle/BackendChoice.ts decides the same way): the configured
 * Ollama servers, or, with `--backend simulator` or in `auto` mode when none answers, the built-in simulator,
 * started on a free loopback port for the checks and stopped after. Unreachable backends are fatal with
 * `--backend ollama` (and NODE_ENV=production) and a warning in `auto`, where `serve` falls back.
 */
import { Duration, Effect, Either, Layer, Context as EffectContext } from "effect"
import type { Scope } from "effect"
import { normalizeName } from "../Domain/ModelName.js"
import { OllamaClient } from "../Ollama/OllamaClient.js"
import * as Simulator from "../Simulator/Simulator.js"
import { defaultConfig } from "../Simulator/SimulatorConfig.js"
import { atLeast } from "./Checks.js"
import type { DatabaseFacts, Pin } from "./ChecksDatabase.js"
import type { Check, Context, Outcome, Severity } from "./StartupValidator.js"

/** The oldest Ollama whose API Sluice speaks (`/api/version`). */
export const minimumOllama = [0, 5, 0] as const

export interface Probe {
  readonly url: string
  readonly reachable: boolean
  readonly error?: string | undefined
  readonly version?: string | undefined
  /** Normalised names of the models it lists. */
  readonly models?: ReadonlySet<string> | undefined
  readonly client: OllamaClient.Service
}

export interface BackendFacts {
  readonly kind: "ollama" | "simulator"
  /** The configured URLs, probed; empty when the simulator is forced. */
  readonly configured: ReadonlyArray<Probe>
  /** What `serve` would talk to: the configured backends, or the simulator. */
  readonly targets: ReadonlyArray<Probe>
  /** `auto` mode, and no configured backend answered. */
  readonly fallback: boolean
}

const probe = (url: string, timeout: Duration.Duration): Effect.Effect<Probe, never, Scope.Scope> =>
  Effect.gen(function* () {
    const context = yield* Layer.build(OllamaClient.layer({ host: url, connectTimeout: timeout }))
    const client = EffectContext.get(context, OllamaClient)
    const bounded = <A>(effect: Effect.Effect<A, { readonly message: string }>) =>
      Effect.either(
        Effect.timeoutFail(effect, {
          duration: timeout,
          onTimeout: () => ({ message: `no answer within ${Duration.format(timeout)}` })
        })
      )
    const heartbeat = yield* bounded(client.heartbeat)
    if (Either.isLeft(heartbeat))
      return { url: client.backend, reachable: false, error: heartbeat.left.message, client }
    const [version, list] = yield* Effect.all([bounded(client.version), bounded(client.list)], { concurrency: 2 })
    return {
      url: client.backend,
      reachable: true,
      client,
      version: Either.isRight(version) ? version.right.version : undefined,
      models: Either.isRight(list) ? new Set(list.right.models.map((m) => normalizeName(m.name))) : undefined,
      error: Either.isLeft(version) ? version.left.message : Either.isLeft(list) ? list.left.message : undefined
    }
  })

const simulated = (timeout: Duration.Duration) =>
  Simulator.make({ port: 0, host: "127.0.0.1", config: defaultConfig }).pipe(
    Effect.flatMap((sim) => probe(sim.url, timeout)),
    Effect.orDie
  )

/** Probes what `serve` would talk to, once, for every backend check. Runs in the caller's Scope. */
export const gatherBackends = (c: Context, timeout: Duration.DurationInput) =>
  Effect.gen(function* () {
    const t = Duration.decode(timeout)
    if (c.mode === "simulator")
      return { kind: "simulator", configured: [], targets: [yield* simulated(t)], fallback: false } as BackendFacts
    const configured = yield* Effect.forEach(c.urls, (url) => probe(url, t), { concurrency: "unbounded" })
    if (c.mode === "auto" && !configured.some((p) => p.reachable))
      return { kind: "simulator", configured, targets: [yield* simulated(t)], fallback: true } as BackendFacts
    return { kind: "ollama", configured, targets: configured, fallback: false } as BackendFacts
  })

const pass = (detail: string): Outcome => ({ ok: true, detail })
const skip = (detail: string): Outcome => ({ ok: true, skipped: true, detail })

const reachable = (c: Context, facts: BackendFacts): Check => {
  const severity: Severity = c.mode === "auto" ? "warning" : "fatal"
  const down = facts.configured.filter((p) => !p.reachable)
  const outcome: Outcome =
    c.mode === "simulator"
      ? skip("--backend simulator: no Ollama is used")
      : down.length === 0
        ? pass(`${facts.configured.map((p) => `${p.url} answers`).join(", ")}`)
        : {
            ok: false,
            detail: `not answering: ${down.map((p) => `${p.url} (${p.error ?? "no answer"})`).join(", ")}`,
            fix:
              "start Ollama there, or correct --ollama (OLLAMA_HOST)" +
              (c.mode === "auto" && facts.fallback
                ? "; until then serve falls back to the simulator"
                : '; the backend is "ollama" (--backend ollama or NODE_ENV=production), so Sluice will not fall ' +
                  "back to its simulator: pass --backend simulator to serve simulated models on purpose")
          }
  return { name: "backends-reachable", severity, run: Effect.succeed(outcome) }
}

const version = (facts: BackendFacts): Check => {
  const up = facts.targets.filter((p) => p.reachable)
  const old = up.filter((p) => p.version === undefined || (p.version !== "0.0.0" && !atLeast(p.version, minimumOllama)))
  const outcome: Outcome =
    up.length === 0
      ? skip("no backend answers")
      : old.length === 0
        ? pass(up.map((p) => `${p.url} ${p.version}`).join(", "))
        : {
            ok: false,
            detail: `unsupported: ${old.map((p) => `${p.url} ${p.version ?? `(no version: ${p.error})`}`).join(", ")}`,
            fix: `upgrade Ollama to ${minimumOllama.join(".")} or newer`
          }
  return { name: "backend-version", severity: "fatal", run: Effect.succeed(outcome) }
}

const models = (name: string, variable: string, required: ReadonlyArray<string>, facts: BackendFacts): Check => {
  const wanted = [...new Set(required.map(normalizeName))]
  const up = facts.targets.filter((p) => p.reachable && p.models !== undefined)
  const missing = wanted.filter((m) => !up.some((p) => p.models!.has(m)))
  const outcome: Outcome =
    wanted.length === 0
      ? skip(`none required (${variable})`)
      : up.length === 0
        ? skip("no backend answers /api/tags")
        : missing.length === 0
          ? pass(`${wanted.join(", ")} present`)
          : {
              ok: false,
              detail: `missing on every backend (${up.map((p) => p.url).join(", ")}): ${missing.join(", ")}`,
              fix: `ollama pull ${missing.join(" ")} on the backends, or correct ${variable}`
            }
  return { name, severity: "fatal", run: Effect.succeed(outcome) }
}

const embeddingLength = (info: Readonly<Record<string, unknown>> | undefined): number | undefined => {
  const entry = Object.entries(info ?? {}).find(([key]) => key.endsWith(".embedding_length"))
  return typeof entry?.[1] === "number" ? entry[1] : undefined
}

/** Each pinned model's dimension, as a backend serving it reports; a model no backend serves is left out. */
const reportedDims = (pins: ReadonlyArray<Pin>, facts: BackendFacts) =>
  Effect.forEach(
    [...new Set(pins.map((p) => p.model))],
    (model) => {
      const target = facts.targets.find((p) => p.reachable && p.models?.has(normalizeName(model)))
      if (target === undefined) return Effect.succeed([model, undefined] as const)
      return target.client.show({ model }).pipe(
        Effect.map((show) => [model, embeddingLength(show.model_info)] as const),
        Effect.orElseSucceed(() => [model, undefined] as const)
      )
    },
    { concurrency: "unbounded" }
  ).pipe(Effect.map((entries) => new Map(entries)))

const dimension = (facts: BackendFacts, database: DatabaseFacts): Check => ({
  name: "embedding-dimension",
  severity: "fatal",
  run: Effect.gen(function* () {
    if (database._tag !== "Open" || database.pins.length === 0) return skip("no stored vector memory")
    const dims = yield* reportedDims(database.pins, facts)
    const wrong = database.pins.filter((p) => dims.get(p.model) !== undefined && dims.get(p.model) !== p.dim)
    const unchecked = database.pins.filter((p) => dims.get(p.model) === undefined)
    const note =
      unchecked.length === 0 ? "" : `; not checked (model not served): ${unchecked.map((p) => p.model).join(", ")}`
    if (wrong.length === 0)
      return pass(`${database.pins.length - unchecked.length} namespace(s) match their model${note}`)
    return {
      ok: false,
      detail: wrong
        .map(
          (p) =>
            `namespace ${p.namespace} holds ${p.model} vectors of ${p.dim} dims, the backend reports ${dims.get(p.model)}`
        )
        .join("; "),
      fix: "serve the model the memory was written with (same tag), or move that memory to a new namespace"
    }
  })
})

const simulatorFallback = (facts: BackendFacts): Check => ({
  name: "simulator-fallback",
  severity: "warning",
  run: Effect.succeed<Outcome>(
    facts.kind === "ollama"
      ? pass("serving real models from Ollama")
      : {
          ok: false,
          detail: facts.fallback
            ? "no Ollama answers: serve would answer with SIMULATED models"
            : "--backend simulator: serving SIMULATED models",
          fix: "start Ollama or pass --ollama URL for real models; --backend ollama forbids the fallback"
        }
  )
})

/** The backend checks over the facts probed once. */
export const backendChecks = (c: Context, facts: BackendFacts, database: DatabaseFacts): ReadonlyArray<Check> => [
  reachable(c, facts),
  version(facts),
  models("chat-models", "SLUICE_REQUIRED_MODELS", c.requirements.chatModels, facts),
  models("embedding-models", "SLUICE_REQUIRED_EMBED_MODELS", c.requirements.embedModels, facts),
  dimension(facts, database),
  simulatorFallback(facts)
]
