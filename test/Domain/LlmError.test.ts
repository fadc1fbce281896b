/**
 * The error family's one vocabulary, pinned: for one instance of every error class (two where a field changes the
 * answer), every property the rest of Sluice reads. The values are those the predicates they replaced answered
 * (`isBackendFailure`, `statusOf`, Retry's `retries`, Fallback's `mendable`, Slots' `overloadTags`, the breaker's
 * `neutralTags`); docs/architecture.md, "Adding an error", says who reads what.
 */
import { assert, describe, it } from "@effect/vitest"
import { Data, Schema } from "effect"
import {
  BudgetExceeded,
  CircuitOpen,
  DecodeError,
  everyBackend,
  type Flags,
  HttpStatusError,
  InvalidRequest,
  isLlmError,
  LlmError,
  ModelNotFound,
  QueueFull,
  RateLimited,
  ServerBusy,
  SharedStoreUnavailable,
  ShuttingDown,
  StreamError,
  StreamIncomplete,
  TimeoutError,
  TransportError
} from "../../src/Domain/LlmError.js"

const common = { backend: "http://a:11434", method: "chat" }

interface Row {
  readonly error: LlmError
  /** The flags that are on; every other flag must be off. */
  readonly on: ReadonlyArray<keyof Flags>
  readonly status: number
  readonly retryAfterMs?: number
  /** OpenAI's error `type`, and its message when it is not the error's own. */
  readonly openAi: { readonly type: string; readonly message?: string }
}

const backendFault = ["retryable", "retried", "backendFailure", "mendable"] as const

const table: ReadonlyArray<Row> = [
  {
    error: new TransportError({ ...common, reason: "connection refused" }),
    on: backendFault,
    status: 502,
    openAi: { type: "api_error" }
  },
  {
    error: new TimeoutError({ ...common, phase: "attempt", timeoutMs: 10 }),
    on: [...backendFault, "overload"],
    status: 504,
    openAi: { type: "api_error" }
  },
  {
    error: new ModelNotFound({ ...common, model: "nope", body: 'model "nope" not found, try pulling it first' }),
    on: ["mendable"],
    status: 404,
    openAi: { type: "not_found_error", message: "model 'nope' not found" }
  },
  {
    error: new ServerBusy({ ...common, body: "server busy" }),
    on: ["retryable", "backpressure", "overload", "mendable"],
    status: 503,
    openAi: { type: "api_error" }
  },
  {
    error: new ServerBusy({ ...common, body: "server busy", retryAfterMs: 2500 }),
    on: ["retryable", "backpressure", "overload", "mendable"],
    status: 503,
    retryAfterMs: 2500,
    openAi: { type: "api_error" }
  },
  {
    error: new InvalidRequest({ ...common, status: 400, body: "invalid options" }),
    on: [],
    status: 400,
    openAi: { type: "invalid_request_error" }
  },
  {
    error: new InvalidRequest({ ...common, status: 413, body: "too large" }),
    on: [],
    status: 413,
    openAi: { type: "invalid_request_error" }
  },
  {
    error: new HttpStatusError({ ...common, status: 500, body: "runner crashed" }),
    on: backendFault,
    status: 500,
    openAi: { type: "api_error" }
  },
  {
    error: new HttpStatusError({ ...common, status: 302, body: "moved" }),
    on: ["mendable"],
    status: 302,
    openAi: { type: "api_error" }
  },
  {
    error: new DecodeError({ ...common, reason: "not JSON" }),
    on: ["mendable"],
    status: 502,
    openAi: { type: "api_error" }
  },
  {
    error: new StreamError({ ...common, body: "out of memory", chunks: 2 }),
    on: backendFault,
    status: 502,
    openAi: { type: "api_error" }
  },
  {
    error: new StreamIncomplete({ ...common, chunks: 3 }),
    on: backendFault,
    status: 502,
    openAi: { type: "api_error" }
  },
  {
    error: new CircuitOpen({ backend: common.backend, retryAfterMs: 1200 }),
    on: ["retryable", "retried", "rerouted", "local", "mendable"],
    status: 503,
    retryAfterMs: 1200,
    openAi: { type: "api_error" }
  },
  {
    error: new CircuitOpen({ backend: everyBackend, retryAfterMs: 0 }),
    on: ["retryable", "local", "mendable"],
    status: 503,
    retryAfterMs: 0,
    openAi: { type: "api_error" }
  },
  {
    error: new RateLimited({ scope: common.backend, limit: "requests", retryAfterMs: 700 }),
    on: ["retryable", "local", "mendable"],
    status: 429,
    retryAfterMs: 700,
    openAi: { type: "api_error" }
  },
  {
    error: new SharedStoreUnavailable({ use: "limits", scope: common.backend, retryAfterMs: 1000 }),
    on: ["retryable", "local", "mendable"],
    status: 503,
    retryAfterMs: 1000,
    openAi: { type: "api_error" }
  },
  {
    error: new QueueFull({ capacity: 3, retryAfterMs: 50 }),
    on: ["retryable", "local", "mendable"],
    status: 503,
    retryAfterMs: 50,
    openAi: { type: "api_error" }
  },
  {
    error: new BudgetExceeded({ budget: "tick", limit: "calls", used: 3, max: 3 }),
    on: ["local"],
    status: 429,
    openAi: { type: "api_error" }
  },
  {
    error: new ShuttingDown(),
    on: ["retryable", "retried", "local"],
    status: 503,
    openAi: { type: "api_error" }
  }
]

const flags: ReadonlyArray<keyof Flags> = [
  "retryable",
  "retried",
  "rerouted",
  "backendFailure",
  "backpressure",
  "overload",
  "local",
  "mendable"
]

const nameOf = ({ error }: Row) =>
  `${error._tag} "${error.message}"${error.retryAfterMs === undefined ? "" : ` (Retry-After ${error.retryAfterMs} ms)`}`

/** The tags of every class in a union of schemas, nested unions included. */
const tagsOf = (schema: Schema.Schema.Any): ReadonlyArray<string> =>
  "members" in schema
    ? (schema.members as ReadonlyArray<Schema.Schema.Any>).flatMap(tagsOf)
    : [(schema as unknown as { readonly _tag: string })._tag]

describe("LlmError", () => {
  for (const row of table) {
    it(`${nameOf(row)}: its properties`, () => {
      const { error } = row
      for (const flag of flags) assert.strictEqual(error[flag], row.on.includes(flag), flag)
      assert.strictEqual(error.status, row.status)
      assert.strictEqual(error.retryAfterMs, row.retryAfterMs)
      assert.deepStrictEqual(error.openAi, {
        message: row.openAi.message ?? error.message,
        type: row.openAi.type,
        code: null
      })
      assert.isTrue(isLlmError(error))
    })
  }

  it("the table holds every class of the family", () => {
    assert.deepStrictEqual(
      new Set(table.map((row) => row.error._tag)),
      new Set(tagsOf(LlmError)),
      "a new error needs its row here"
    )
  })

  it("the flags agree with each other", () => {
    for (const { error } of table) {
      if (error.retried) assert.isTrue(error.retryable, `${error._tag}: retried but not retryable`)
      if (error.rerouted) assert.isTrue(error.retried, `${error._tag}: rerouted but not retried`)
      if (error.backendFailure) assert.isFalse(error.local || error.backpressure, `${error._tag}: counted twice`)
      if (error.backpressure) assert.isFalse(error.retried, `${error._tag}: re-queued and retried`)
    }
  })

  it("an error decoded from its encoded form keeps its properties", () => {
    for (const row of table) {
      const decoded = Schema.decodeUnknownSync(LlmError)(Schema.encodeSync(LlmError)(row.error))
      assert.isTrue(isLlmError(decoded))
      for (const flag of flags) assert.strictEqual(decoded[flag], row.error[flag], `${row.error._tag}.${flag}`)
      assert.strictEqual(decoded.status, row.status)
    }
  })

  it("the properties are not fields: encoding, JSON and keys hold the fields only", () => {
    const error = new CircuitOpen({ backend: common.backend, retryAfterMs: 1200 })
    assert.deepStrictEqual(Object.keys(error).sort(), ["_tag", "backend", "retryAfterMs"])
    assert.deepStrictEqual(JSON.parse(JSON.stringify(error)), {
      _tag: "CircuitOpen",
      backend: common.backend,
      retryAfterMs: 1200
    })
  })

  it("isLlmError: nothing outside the family passes, not even a lookalike with the same tag", () => {
    class TransportLookalike extends Data.TaggedError("TransportError")<{ readonly reason: string }> {}
    const outsiders: ReadonlyArray<unknown> = [
      new TransportLookalike({ reason: "refused" }),
      { _tag: "TransportError", retryable: true, backendFailure: true },
      new Error("boom"),
      "TransportError",
      null,
      undefined
    ]
    for (const u of outsiders) assert.isFalse(isLlmError(u), String(u))
  })
})
