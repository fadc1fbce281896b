/**
 * deploy/docker, checked by reading (no Docker engine runs here): the Dockerfile's stages, user, volume, stop
 * signal and health check; that everything it copies exists and passes its .dockerignore; that the compose file
 * mounts files that exist and publishes only on loopback; and the HEALTHCHECK command itself, run against a real
 * `sluice serve`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { sluice, waitFor } from "../Cli/process.js"

const dockerfile = readFileSync("deploy/docker/Dockerfile", "utf8")
const compose = readFileSync("deploy/docker/compose.yml", "utf8")
const ignore = readFileSync("deploy/docker/Dockerfile.dockerignore", "utf8")

/** Dockerfile instructions (continuation lines joined). */
const instructions = dockerfile
  .replace(/\\\n/g, " ")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l.length > 0 && !l.startsWith("#"))

const stage = (name: string) => {
  const start = instructions.findIndex((l) => new RegExp(`^FROM .* AS ${name}$`).test(l))
  const end = instructions.findIndex((l, i) => i > start && l.startsWith("FROM "))
  return instructions.slice(start, end === -1 ? undefined : end)
}

describe("deploy/docker", () => {
  it("a build stage (npm ci, build, prune) and a runtime stage with production dependencies only", () => {
    const build = stage("build")
    const runtime = stage("runtime")
    assert.isAbove(build.length, 0)
    assert.isAbove(runtime.length, 0)
    assert.isTrue(build.some((l) => /^RUN .*npm ci\b/.test(l)))
    assert.isTrue(build.some((l) => /^RUN .*npm run build .*npm prune --omit=dev/.test(l)))
    assert.isFalse(
      runtime.some((l) => /npm (ci|install)/.test(l)),
      "the runtime installs nothing"
    )
    assert.isTrue(runtime.some((l) => l === "COPY --from=build /src/node_modules ./node_modules"))
  })

  it("runs as a non-root user, with the data directory a volume, SIGTERM and a liveness health check", () => {
    const runtime = stage("runtime")
    const user = runtime.find((l) => l.startsWith("USER "))
    assert.match(user ?? "", /^USER sluice(:sluice)?$/)
    assert.include(runtime, 'VOLUME ["/var/lib/sluice"]')
    assert.include(runtime, "STOPSIGNAL SIGTERM")
    assert.isTrue(runtime.some((l) => l.startsWith("HEALTHCHECK ") && l.includes("/health/live")))
    assert.isTrue(runtime.some((l) => /^ENV .*SLUICE_DATA_DIR=\/var\/lib\/sluice/.test(l)))
    assert.include(runtime, 'ENTRYPOINT ["node", "bin/sluice.mjs"]')
  })

  it("everything the build copies exists and passes the .dockerignore", () => {
    const allowed = ignore
      .split("\n")
      .filter((l) => l.startsWith("!"))
      .map((l) => l.slice(1).replace(/\/\*\*$/, ""))
    for (const line of stage("build").filter((l) => l.startsWith("COPY "))) {
      for (const source of line.split(/\s+/).slice(1, -1)) {
        assert.isTrue(existsSync(source), `${source} exists`)
        assert.include(allowed, source, `${source} is in the build context`)
      }
    }
  })

  it("compose: four services, mounted files exist, ports on loopback, a stop grace beyond the drain", () => {
    for (const service of ["ollama", "sluice", "prometheus", "grafana"])
      assert.match(compose, new RegExp(`^  ${service}:$`, "m"))
    for (const [, file] of compose.matchAll(/- (\.\.\/[\w./-]+):/g)) {
      assert.isTrue(existsSync(join("deploy/docker", file!)), `${file} exists`)
    }
    for (const [, port] of compose.matchAll(/- "([\d.:]+)"/g)) assert.match(port!, /^127\.0\.0\.1:/)
    const grace = Number(/stop_grace_period: (\d+)s/.exec(compose)?.[1])
    assert.isAtLeast(grace, 40)
    assert.match(compose, /SLUICE_API_KEYS: \$\{SLUICE_API_KEYS:\?/, "keys come from the environment, not the file")
  })

  it("compose.scale-out: two instances sharing PostgreSQL and Redis behind nginx, secrets from the environment", () => {
    const scaleOut = readFileSync("deploy/docker/compose.scale-out.yml", "utf8")
    const nginx = readFileSync("deploy/docker/nginx-scale-out.conf", "utf8")
    const block = scaleOut.slice(scaleOut.indexOf("\nservices:"), scaleOut.indexOf("\nvolumes:"))
    const services = [...block.matchAll(/^  ([\w-]+):$/gm)].map((m) => m[1])
    for (const service of ["ollama", "postgres", "redis", "sluice-a", "sluice-b", "nginx"])
      assert.include(services, service)
    // every Sluice instance is in nginx's upstream, and every upstream server is a service
    const instances = services.filter((s) => s!.startsWith("sluice-"))
    const upstream = [...nginx.matchAll(/^\s*server ([\w-]+):11435/gm)].map((m) => m[1])
    assert.deepStrictEqual(upstream.sort(), instances.sort())
    for (const [, file] of scaleOut.matchAll(/- (\.\/[\w./-]+):/g)) {
      assert.isTrue(existsSync(join("deploy/docker", file!)), `${file} exists`)
    }
    for (const [, port] of scaleOut.matchAll(/- "([\d.:]+)"/g)) assert.match(port!, /^127\.0\.0\.1:/)
    assert.match(scaleOut, /SLUICE_DATABASE_URL: postgres:\/\/sluice:\$\{POSTGRES_PASSWORD:\?/)
    assert.match(scaleOut, /SLUICE_REDIS_URL: redis:\/\/redis:6379/)
    assert.match(scaleOut, /SLUICE_API_KEYS: \$\{SLUICE_API_KEYS:\?/, "keys come from the environment, not the file")
    assert.isAtLeast(Number(/stop_grace_period: (\d+)s/.exec(scaleOut)?.[1]), 40)
  })

  it("grafana: the dashboard's datasource variable starts on the provisioned (default) Prometheus", () => {
    const datasource = readFileSync("deploy/grafana/provisioning/datasources/prometheus.yml", "utf8")
    assert.match(datasource, /type: prometheus/)
    assert.match(datasource, /isDefault: true/)
    const dashboard = JSON.parse(readFileSync("deploy/grafana/sluice.json", "utf8")) as {
      panels: Array<{ datasource?: { uid: string } | null }>
      templating: { list: Array<{ name: string; type: string }> }
    }
    const uids = new Set(dashboard.panels.flatMap((p) => (p.datasource ? [p.datasource.uid] : [])))
    assert.deepStrictEqual([...uids], ["${DS_PROMETHEUS}"])
    assert.strictEqual(dashboard.templating.list.find((v) => v.name === "DS_PROMETHEUS")?.type, "datasource")
    assert.match(
      readFileSync("deploy/grafana/provisioning/dashboards/sluice.yml", "utf8"),
      /path: \/var\/lib\/grafana\/dashboards/
    )
  })

  it.scopedLive("the HEALTHCHECK command passes against a running sluice serve, and fails when nothing listens", () =>
    Effect.gen(function* () {
      const line = instructions.find((l) => l.startsWith("HEALTHCHECK ")) ?? ""
      const command = JSON.parse(line.slice(line.indexOf("CMD ") + 4)) as Array<string>
      const run = yield* sluice(["serve", "--port", "0", "--backend", "simulator"])
      const port = new URL(yield* waitFor(run, /Listening on (http:\/\/[\w.:[\]]+)/)).port
      const check = (env: Record<string, string>) =>
        Effect.async<number>((resume) => {
          execFile(process.execPath, command.slice(1), { env: { ...process.env, ...env } }, (error) =>
            resume(Effect.succeed(error === null ? 0 : Number(error.code ?? 1)))
          )
        })
      assert.strictEqual(command[0], "node")
      assert.strictEqual(yield* check({ SLUICE_PORT: port }), 0)
      run.child.kill("SIGTERM")
      yield* Effect.promise(() => run.exited)
      assert.strictEqual(yield* check({ SLUICE_PORT: port }), 1)
    })
  )
})
