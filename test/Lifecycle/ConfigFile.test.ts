/** The config file: parsing, the errors that name the key and line, and the environment's precedence over it. */
import { assert, describe, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Either } from "effect"
import * as EngineConfig from "../../src/Llm/EngineConfig.js"
import * as ConfigFile from "../../src/Lifecycle/ConfigFile.js"

const problems = (text: string, path = "sluice.yaml") =>
  Either.match(ConfigFile.parse(path, text), { onLeft: (e) => e.problems, onRight: () => [] })

const example = `# two backends, one alias
server:
  port: 8080
backends:
  - url: http://gpu-a:11434
    slots: 8
    priority: 10
    models: [llama3.2]
  - url: gpu-b:11434
    slots: adaptive
models:
  llama3.2:
    aliases: [fast]
    fallbacks: [{ model: qwen3 }, stale]
    deadline: 30 seconds
cache:
  ttl: 5 minutes
health:
  requiredModels: [llama3.2, qwen3]
`

describe("ConfigFile", () => {
  it("reads a complete YAML file", () => {
    const loaded = Either.getOrThrow(ConfigFile.parse("sluice.yaml", example))
    assert.strictEqual(loaded.file.backends?.length, 2)
    assert.deepStrictEqual(loaded.file.models?.["llama3.2"]?.aliases, ["fast"])
  })

  it("names an unknown key (a typo) with its path and line", () => {
    const text = example.replace("    slots: adaptive", "    slot: 2")
    assert.deepStrictEqual(problems(text), ["sluice.yaml:10: backends[1].slot: unknown key"])
  })

  it("names a wrong value with its path, line and what is expected; every problem at once", () => {
    const text = example.replace("deadline: 30 seconds", "deadline: 30 secs").replace("port: 8080", "port: eighty")
    assert.deepStrictEqual(problems(text), [
      'sluice.yaml:3: server.port: Expected number, actual "eighty"',
      `sluice.yaml:15: models.llama3.2.deadline: a duration such as "30 seconds", "500 millis" or "10 minutes"`
    ])
  })

  it("reports YAML syntax errors with their line, and reads JSON too", () => {
    const [syntax] = problems("server:\n  port: 1\n  host: [a\n")
    assert.match(syntax ?? "", /^sluice\.yaml:\d+: /)
    const json = ConfigFile.parse("sluice.json", JSON.stringify({ retry: { max: 2 } }))
    assert.deepStrictEqual(
      Either.map(json, (l) => l.file.retry?.max),
      Either.right(2)
    )
    assert.deepStrictEqual(problems(`{"retry": {"max": -1}}`, "sluice.json"), [
      "sluice.json:1: retry.max: a whole number, 0 or more"
    ])
  })

  it.effect("a missing file is an error, not an empty config", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(ConfigFile.load("/nonexistent/sluice.yaml"))
      assert.match(error.message, /cannot read it/)
    })
  )

  it.effect("puts the file's settings behind the environment, for every Config read", () =>
    Effect.gen(function* () {
      const loaded = Either.getOrThrow(ConfigFile.parse("sluice.yaml", example))
      assert.strictEqual(ConfigFile.toEnv(loaded.file).get("SLUICE_REQUIRED_MODELS"), "llama3.2,qwen3")
      const env = ConfigProvider.fromMap(new Map([["SLUICE_CACHE_TTL", "1 minute"]]))
      const read = Config.all([Config.integer("SLUICE_PORT"), EngineConfig.engine])
      const [port, engine] = yield* Effect.withConfigProvider(read, ConfigFile.provider(loaded, env))
      assert.strictEqual(port, 8080)
      // the environment wins over the file's 5 minutes
      assert.deepStrictEqual(String(engine.settings.cache?.ttl), "Duration(1m)")
    })
  )

  it("takes --config out of the arguments, else SLUICE_CONFIG", () => {
    const argv = ["node", "sluice", "serve", "--config", "a.yaml", "--port", "1"]
    assert.deepStrictEqual(ConfigFile.fromArgv(argv, {}), {
      path: "a.yaml",
      argv: ["node", "sluice", "serve", "--port", "1"]
    })
    assert.deepStrictEqual(ConfigFile.fromArgv(["node", "s", "--config=b.json"], {}).path, "b.json")
    assert.deepStrictEqual(ConfigFile.fromArgv(["node", "s"], { SLUICE_CONFIG: "c.yaml" }).path, "c.yaml")
    assert.strictEqual(ConfigFile.fromArgv(["node", "s"], {}).path, undefined)
  })
})
