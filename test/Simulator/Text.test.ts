import { assert, describe, it } from "@effect/vitest"
import { embedding, rawEmbedding } from "../../src/Simulator/Embedding.js"
import { plan } from "../../src/Simulator/Plan.js"
import { normalizeName, parseKeepAlive } from "../../src/Simulator/SimulatorConfig.js"
import { fnv1a, mulberry32, toolCallFor } from "../../src/Simulator/Text.js"
import { dot, norm } from "./support.js"

const base = { format: undefined, think: false, tools: [], lastUserText: undefined, numPredict: undefined }

describe("Simulator text", () => {
  it("the PRNG is seeded and reproducible", () => {
    const a = mulberry32(fnv1a("x"))
    const b = mulberry32(fnv1a("x"))
    const c = mulberry32(fnv1a("y"))
    const xs = [a(), a(), a()]
    assert.deepStrictEqual(xs, [b(), b(), b()])
    assert.notDeepEqual(xs, [c(), c(), c()])
    for (const x of xs) assert.isTrue(x >= 0 && x < 1)
  })

  it("a plan depends only on its key; length is 8..64 and num_predict caps it", () => {
    const one = plan({ ...base, key: "k1" })
    assert.deepStrictEqual(plan({ ...base, key: "k1" }), one)
    assert.notDeepEqual(plan({ ...base, key: "k2" }).content, one.content)
    for (let i = 0; i < 200; i++) {
      const p = plan({ ...base, key: `key ${i}` })
      assert.isTrue(p.content.length >= 8 && p.content.length <= 64, `${p.content.length}`)
      assert.strictEqual(p.doneReason, "stop")
    }
    const capped = plan({ ...base, key: "k1", numPredict: 3 })
    assert.strictEqual(capped.doneReason, "length")
    assert.strictEqual(capped.evalCount, 3)
    assert.strictEqual(capped.content.length, 3)
  })

  it("format json or a schema gives valid JSON; a schema's properties are filled by type", () => {
    const json = plan({ ...base, key: "j", format: "json" })
    assert.isObject(JSON.parse(json.content.join("")))
    const schema = {
      type: "object",
      properties: { name: { type: "string" }, age: { type: "integer" }, ok: { type: "boolean" }, mood: { enum: ["a"] } }
    }
    const value = JSON.parse(plan({ ...base, key: "s", format: schema }).content.join("")) as Record<string, unknown>
    assert.isString(value.name)
    assert.isTrue(Number.isInteger(value.age))
    assert.isBoolean(value.ok)
    assert.strictEqual(value.mood, "a")
  })

  it("tool-call rule: a named tool in the last user message is called with typed arguments", () => {
    const tools = [
      { type: "function", function: { name: "other", parameters: { type: "object", properties: {} } } },
      {
        type: "function",
        function: {
          name: "get_weather",
          parameters: {
            type: "object",
            properties: {
              city: { type: "string" },
              days: { type: "integer" },
              metric: { type: "boolean" },
              extra: { type: "object" }
            }
          }
        }
      }
    ]
    const call = toolCallFor(tools, "Please call get_weather for Tokyo!", mulberry32(1))
    assert.isDefined(call)
    assert.match(call!.id!, /^call_[a-z0-9]{8}$/)
    assert.strictEqual(call!.function.index, 0)
    assert.strictEqual(call!.function.name, "get_weather")
    const args = call!.function.arguments
    assert.strictEqual(args.city, "Tokyo")
    assert.isTrue(Number.isInteger(args.days))
    assert.strictEqual(args.metric, true)
    assert.strictEqual(args.extra, null)
    assert.isUndefined(toolCallFor(tools, "nothing to see", mulberry32(1)))
  })

  it("embeddings are normalised, truncatable, and closer when texts share words", () => {
    const a = embedding("the cat sat on the mat", 384)
    assert.strictEqual(a.length, 384)
    assert.closeTo(norm(a), 1, 1e-9)
    assert.deepStrictEqual(embedding("the cat sat on the mat", 384), a)
    const near = embedding("a cat on a mat", 384)
    const far = embedding("quarterly revenue projections", 384)
    assert.isAbove(dot(a, near), dot(a, far))
    const cut = embedding("the cat sat on the mat", 384, 32)
    assert.strictEqual(cut.length, 32)
    assert.closeTo(norm(cut), 1, 1e-9)
    assert.isAbove(norm(rawEmbedding("the cat sat", 384)), 1.5)
  })

  it("keep_alive parsing follows Go durations and seconds", () => {
    assert.strictEqual(parseKeepAlive("5m"), 300_000)
    assert.strictEqual(parseKeepAlive("300ms"), 300)
    assert.strictEqual(parseKeepAlive("1h30m"), 5_400_000)
    assert.strictEqual(parseKeepAlive("-1m"), Infinity)
    assert.strictEqual(parseKeepAlive(-1), Infinity)
    assert.strictEqual(parseKeepAlive(0), 0)
    assert.strictEqual(parseKeepAlive("0"), 0)
    assert.strictEqual(parseKeepAlive(1.5), 1500)
    assert.isUndefined(parseKeepAlive("5"))
    assert.isUndefined(parseKeepAlive("soon"))
  })

  it("model names match case-insensitively with an implied :latest", () => {
    assert.strictEqual(normalizeName("Llama3.2"), "llama3.2:latest")
    assert.strictEqual(normalizeName("llama3.2:8b"), "llama3.2:8b")
    assert.strictEqual(normalizeName("host:5000/ns/model"), "host:5000/ns/model:latest")
  })
})
