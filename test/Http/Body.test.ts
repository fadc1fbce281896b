/**
 * Body.decodeValue with `plain`: a value already of the schema's type is taken as it is; every other value gets
 * exactly what the decode gives without it (the same value, or the same refusal).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { ChatRequest } from "../../src/Domain/Chat.js"
import { GenerateRequest } from "../../src/Domain/Generate.js"
import { decodeValue } from "../../src/Http/Body.js"
import * as BodyErrors from "../../src/Http/BodyErrors.js"
import { ChatCompletionRequest } from "../../src/Http/OpenAiApi.js"

const user = { role: "user", content: "hi" }
const bodies: ReadonlyArray<unknown> = [
  { model: "llama3.2", messages: [user], stream: false, options: { num_predict: 10, custom: 1 } },
  { model: "llama3.2", messages: [user], format: null, future_field: { a: 1 } },
  { model: "llama3.2", messages: [{ ...user, images: null, tool_calls: null }] },
  { model: "llama3.2", messages: [{ role: "user" }] },
  { model: 3, messages: [user] },
  { model: "llama3.2", prompt: "hi", keep_alive: "5m", think: "high" },
  { model: "llama3.2", prompt: 7 },
  { model: "gpt", messages: [user], stop: null, stream: false },
  { model: "gpt", messages: [{ role: "robot", content: "x" }] },
  "not an object",
  null
]

const schemas = [
  ["ChatRequest", ChatRequest, BodyErrors.ollama()],
  ["GenerateRequest", GenerateRequest, BodyErrors.ollama()],
  ["ChatCompletionRequest", ChatCompletionRequest, BodyErrors.openAi]
] as const

describe("Body.decodeValue", () => {
  for (const [name, schema, refuse] of schemas)
    it.effect(`plain gives what the decode gives (${name})`, () =>
      Effect.gen(function* () {
        const decoded = decodeValue(schema as never, refuse)
        const plain = decodeValue(schema as never, refuse, { plain: true })
        for (const body of bodies) {
          const [a, b] = [yield* Effect.either(decoded(body)), yield* Effect.either(plain(body))]
          assert.deepStrictEqual(
            Either.mapLeft(b, (e) => ({ ...e })),
            Either.mapLeft(a, (e) => ({ ...e })),
            JSON.stringify(body)
          )
        }
      })
    )
})
