/**
 * deploy/prometheus and deploy/grafana against a real `sluice serve` (the built bin, simulator backend):
 * - `promtool check config` / `check rules` pass;
 * - every `sluice_*` metric the alert rules and the dashboard name is declared in Metrics.ts, and is in
 *   `/metrics` after a short workload (misses, a hit, a stream, embeds, an unknown model, then a backend that
 *   fails until its breaker opens) — except the few only their own event creates (listed below, with why);
 * - every metric any rule or panel reads (the stock `process_*`/`nodejs_*` names too) has a TYPE in `/metrics`;
 * - Debian's Prometheus scrapes the instance (target up, `sluice_` series stored) and evaluates every alert
 *   rule without an error.
 * Tests needing promtool or prometheus skip with the reason when missing; .ci/run installs them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { randomBytes } from "node:crypto"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Metrics from "../../src/Observability/Metrics.js"
import { closedPort, type Running, sluice, waitFor } from "../Cli/process.js"
import { dashboardExprs, metricNames, ruleExprs } from "./promql.js"

const has = (bin: string) => spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0
const root = process.cwd()
const deployFiles = ["deploy/prometheus/alerts.yml", "deploy/prometheus/prometheus.yml", "deploy/grafana/sluice.json"]

/**
 * Referenced metrics without samples after the short workload (Effect's registry creates a series on its first
 * update, and a workload against one simulator cannot cause these events). Each still appears in /metrics with
 * its HELP and TYPE lines (the renderer prints every declared metric). Why each has no sample:
 */
const eventOnly: Record<string, string> = {
  sluice_queue_rejections_total: "needs a full scheduler queue",
  sluice_ratelimit_rejections_total: "needs a rate limit and a caller waiting past its maximum (30 s)",
  sluice_budget_exhausted_total: "needs an agent or API key budget to run out",
  sluice_auth_failures_total: "needs API keys and a refused request",
  sluice_llm_fallbacks_total: "needs a configured fallback",
  sluice_cache_evictions_total: "needs the cache past its size limits",
  sluice_breaker_rejections_total:
    "counted when a call reaches an open breaker; with one backend the pick fails first (CircuitOpen, no count)",
  sluice_scheduler_limit: "set by the adaptive scheduler once it adjusts",
  sluice_agents_active: "agents run in `sluice agent run`, not in this workload",
  sluice_agent_episodes_total: "agents",
  sluice_agent_ticks_total: "agents",
  sluice_agent_tick_duration_seconds: "agents",
  sluice_agent_memory_entries: "agents",
  sluice_agent_memory_bytes: "agents",
  sluice_bus_publishes_total: "the event bus (agents)",
  sluice_bus_handler_errors_total: "a failing bus handler",
  sluice_bus_dead_letters_total: "a bus message that exhausted its handler's retries"
}

/** Metrics the rules read from other exporters: Prometheus' own `up`, node_exporter's filesystems. */
const otherExporters = ["up", "node_filesystem_avail_bytes", "node_filesystem_size_bytes"]

const histogramSuffix = /_(bucket|sum|count)$/

/** The declared metric a referenced name stands for (`x_bucket` of histogram `x` is `x`). */
const declaredName = (name: string): string => {
  if (Metrics.all.includes(name)) return name
  const base = name.replace(histogramSuffix, "")
  return Metrics.catalog.some((d) => d.name === base && d.kind === "histogram") ? base : name
}

/** Every `sluice_*` metric named in the alert rules, the scrape config and the dashboard. */
const referenced = (): ReadonlyArray<string> => {
  const names = new Set<string>()
  for (const file of deployFiles) {
    for (const match of readFileSync(join(root, file), "utf8").matchAll(/\bsluice_[a-z0-9_]+/g)) {
      names.add(declaredName(match[0]))
    }
  }
  return Array.from(names).sort()
}

const post = (url: string, body: unknown, key?: string, method = "POST") =>
  Effect.promise(() =>
    fetch(url, {
      method,
      body: JSON.stringify(body),
      headers: key === undefined ? {} : { authorization: `Bearer ${key}` }
    }).then((r) => r.text())
  )

const chat = (url: string, content: string, extra: Record<string, unknown> = {}, key?: string) =>
  post(`${url}/api/chat`, { model: "llama3.2", stream: false, messages: [{ role: "user", content }], ...extra }, key)

/** A short workload: misses, a hit, a stream, embeds, a generate, an unknown model; then failures. */
const workload = (url: string, simulator: string, key?: string) =>
  Effect.gen(function* () {
    yield* chat(url, "hello", {}, key)
    yield* chat(url, "hello", {}, key)
    yield* post(`${url}/api/chat`, { model: "llama3.2", messages: [{ role: "user", content: "a stream" }] }, key)
    yield* post(`${url}/api/embed`, { model: "nomic-embed-text", input: ["one", "two"] }, key)
    yield* post(`${url}/api/generate`, { model: "llama3.2", prompt: "why", stream: false }, key)
    yield* chat(url, "hello", { model: "no-such-model" }, key)
    // the backend fails every call: retries, then the breaker opens and sheds the next calls
    yield* post(`${simulator}/_sim/faults`, { error500: 1 }, undefined, "PUT")
    yield* Effect.forEach(["f1", "f2", "f3"], (c) => chat(url, c, {}, key), { concurrency: "unbounded" })
    yield* post(`${simulator}/_sim/faults`, { error500: 0 }, undefined, "PUT")
  })

/**
 * deploy/prometheus as a deployment installs it, in a temporary directory: prometheus.yml scraping `target`
 * (optionally every `interval`), alerts.yml beside it, and the key file it names holding `key`.
 */
const deployedConfig = (target: string, key: string, interval?: string) => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-prometheus-"))
  let config = readFileSync(join(root, "deploy/prometheus/prometheus.yml"), "utf8").replace("sluice:11435", target)
  if (interval !== undefined) {
    config = config.replace(/(scrape_interval|evaluation_interval|scrape_timeout): \d+s/g, `$1: ${interval}`)
  }
  writeFileSync(join(dir, "prometheus.yml"), config)
  copyFileSync(join(root, "deploy/prometheus/alerts.yml"), join(dir, "alerts.yml"))
  writeFileSync(join(dir, "sluice-metrics.key"), key, { mode: 0o600 })
  return dir
}

/** `sluice serve` on a free loopback port in front of its simulator: the gateway's and simulator's URLs. */
const serve = (env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const run: Running = yield* sluice(["serve", "--port", "0", "--backend", "simulator"], env)
    const url = yield* waitFor(run, /Listening on (http:\/\/[\w.:[\]]+)/)
    const simulator = yield* waitFor(run, /Simulator: (http:\/\/[\d.:]+)/)
    return { run, url, simulator }
  })

/** Names with at least one sample line. */
const sampledNames = (text: string) =>
  new Set(
    text
      .split("\n")
      .filter((line) => line.startsWith("sluice_"))
      .map((line) => declaredName(/^[a-z0-9_]+/.exec(line)?.[0] ?? ""))
  )

/** Names with a `# TYPE` line (every declared metric has one, sampled or not). */
const typedNames = (text: string) =>
  new Set(text.split("\n").flatMap((line) => /^# TYPE (sluice_[a-z0-9_]+) /.exec(line)?.slice(1) ?? []))

const promtool = (...args: ReadonlyArray<string>) => spawnSync("promtool", args, { cwd: root, encoding: "utf8" })

describe("deploy/prometheus", () => {
  it.skipIf(!has("promtool"))(
    "promtool check config and check rules pass (needs Debian's prometheus: .ci/run installs it)",
    () => {
      const syntax = promtool("check", "config", "--syntax-only", "deploy/prometheus/prometheus.yml")
      assert.strictEqual(syntax.status, 0, syntax.stdout + syntax.stderr)
      // the full check also opens the files the config names: the rules, and the key file a deployment adds
      const config = join(deployedConfig("sluice:11435", "a-key"), "prometheus.yml")
      const full = promtool("check", "config", config)
      assert.strictEqual(full.status, 0, full.stdout + full.stderr)
      const rules = promtool("check", "rules", "deploy/prometheus/alerts.yml")
      assert.strictEqual(rules.status, 0, rules.stdout + rules.stderr)
      assert.match(rules.stdout, /SUCCESS: \d+ rules found/)
    }
  )

  it.scopedLive("every metric named in the alert rules and the dashboard exists in /metrics after a workload", () =>
    Effect.gen(function* () {
      const names = referenced()
      assert.isAbove(names.length, 40)
      const undeclared = names.filter((n) => !Metrics.all.includes(n))
      assert.deepStrictEqual(undeclared, [], "named in deploy/ but not declared in src/Observability/Metrics.ts")
      const stale = Object.keys(eventOnly).filter((n) => !names.includes(n))
      assert.deepStrictEqual(stale, [], "listed as event-only but no longer referenced")

      const { url, simulator } = yield* serve()
      yield* workload(url, simulator)
      const text = yield* Effect.promise(() => fetch(`${url}/metrics`).then((r) => r.text()))
      const typed = typedNames(text)
      const scraped = sampledNames(text)
      const missing = names.filter((n) => !typed.has(n))
      assert.deepStrictEqual(missing, [], "referenced in deploy/ but absent from /metrics")
      const unexplained = names.filter((n) => !scraped.has(n) && !(n in eventOnly))
      assert.deepStrictEqual(
        unexplained,
        [],
        "referenced in deploy/, without samples after the workload, and not explained"
      )
      const types = new Map(
        text.split("\n").flatMap((l) => {
          const m = /^# TYPE (\S+) (\S+)$/.exec(l)
          return m === null ? [] : [[m[1]!, m[2]!] as const]
        })
      )
      const read = new Set([...dashboardExprs(root), ...ruleExprs(root)].flatMap(metricNames))
      const absent = Array.from(read).filter((n) => {
        const base = n.replace(histogramSuffix, "")
        return !types.has(n) && types.get(base) !== "histogram" && !otherExporters.includes(n)
      })
      assert.deepStrictEqual(absent, [], "read by a rule or panel but without a TYPE in /metrics")
      for (const n of ["sluice_breaker_trips_total", "sluice_breaker_transitions_total", "sluice_llm_retries_total"]) {
        assert.isTrue(scraped.has(n), `${n} after the failing backend`)
      }
    })
  )

  it.scopedLive.skipIf(!has("prometheus"))(
    "Debian's Prometheus scrapes sluice serve and evaluates every alert rule (needs Debian's prometheus: .ci/run installs it)",
    () =>
      Effect.gen(function* () {
        const key = randomBytes(16).toString("hex")
        const { run, url, simulator } = yield* serve({ SLUICE_API_KEY: key })
        yield* chat(url, "hello", {}, key)
        const target = new URL(url).host
        const port = yield* closedPort
        const dir = deployedConfig(target, key, "1s")
        const config = join(dir, "prometheus.yml")
        const prometheus = yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(
              "prometheus",
              [
                `--config.file=${config}`,
                `--storage.tsdb.path=${join(dir, "data")}`,
                `--web.listen-address=127.0.0.1:${port}`
              ],
              { stdio: "ignore" }
            )
          ),
          (child) => Effect.sync(() => child.kill("SIGKILL"))
        )
        const api = (path: string) =>
          Effect.tryPromise(() =>
            fetch(`http://127.0.0.1:${port}/api/v1/${path}`).then((r) => r.json() as Promise<{ data: any }>)
          )
        const poll = <A>(read: Effect.Effect<A, unknown>, done: (a: A) => boolean) =>
          Effect.gen(function* () {
            for (let i = 0; i < 200; i++) {
              const value = yield* Effect.option(read)
              if (value._tag === "Some" && done(value.value)) return value.value
              if (prometheus.exitCode !== null) return yield* Effect.die(new Error("prometheus exited"))
              yield* Effect.sleep("100 millis")
            }
            return yield* Effect.die(new Error(`timed out polling Prometheus (sluice: ${run.stderr()})`))
          })

        type Target = { labels: { job: string }; health: string }
        const sluiceTarget = (r: { data: any }) =>
          (r.data.activeTargets as Array<Target> | undefined)?.find((t) => t.labels.job === "sluice")
        const targets = yield* poll(api("targets"), (r) => sluiceTarget(r)?.health === "up")
        assert.strictEqual(sluiceTarget(targets)?.health, "up")
        const anonymous = yield* Effect.promise(() => fetch(`${url}/metrics`).then((r) => r.status))
        assert.strictEqual(anonymous, 401, "/metrics needs the key Prometheus read from sluice-metrics.key")
        yield* workload(url, simulator, key)
        const series = yield* poll(
          api(`query?query=${encodeURIComponent('count({__name__=~"sluice_.+"})')}`),
          (r) => Number(r.data.result?.[0]?.value?.[1] ?? 0) > 40
        )
        assert.isAbove(Number(series.data.result[0].value[1]), 40)
        const up = yield* api(`query?query=${encodeURIComponent('sluice_ready{job="sluice"}')}`)
        assert.strictEqual(up.data.result[0]?.value?.[1], "1")

        type Rule = { name: string; health: string; lastError?: string }
        const rules = yield* poll(api("rules"), (r) =>
          (r.data.groups as Array<{ rules: Array<Rule> }>).every((g) => g.rules.every((x) => x.health !== "unknown"))
        )
        const all = (rules.data.groups as Array<{ rules: Array<Rule> }>).flatMap((g) => g.rules)
        assert.isAbove(all.length, 15)
        assert.deepStrictEqual(
          all.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.lastError}`),
          [],
          "rules that fail to evaluate"
        )
      })
  )
})
