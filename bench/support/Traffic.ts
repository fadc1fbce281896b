/**
 * Mixed gateway traffic for the soak: closed-loop callers against `sluice serve`, each call one of four kinds in a
 * fixed mix (non-streamed chat, streamed chat on /api/chat, /api/embed, /v1/chat/completions), tallied per kind.
 *
 * Choices:
 * - A call is ok only when its status is 2xx and its body is whole: a chat answer with `done: true`; a stream whose
 *   every NDJSON line parses, none of them an `error`, the last with `done: true`; one vector per input; an OpenAI
 *   completion with a message. Anything else is a failure labelled `HTTP <status>`, `broken stream`, `bad body`,
 *   `network <code>` or `client timeout`; the first body seen per label is kept for the report.
 * - Prompts are distinct (a counter per kind), so the pipeline runs, except every 10th non-streamed chat, embed and
 *   OpenAI call, which repeats one of 20 prompts, so the cache has hits on purpose.
 * - Each call has a client timeout (`clientTimeoutMs`), so a hung call is counted instead of hanging a caller.
 */
import { performance } from "node:perf_hooks"

export type Kind = "chat" | "chat stream" | "embed" | "openai chat"

/** 20 calls: 8 chat, 6 streamed chat, 4 embed, 2 OpenAI chat. */
export const mix: ReadonlyArray<Kind> = [
  ...Array<Kind>(8).fill("chat"),
  ...Array<Kind>(6).fill("chat stream"),
  ...Array<Kind>(4).fill("embed"),
  ...Array<Kind>(2).fill("openai chat")
]
export const kinds: ReadonlyArray<Kind> = ["chat", "chat stream", "embed", "openai chat"]

export interface Tally {
  ok: number
  readonly failed: Map<string, number>
  /** Latencies (ms) of the successful calls. */
  readonly latencies: Array<number>
}

export interface Settings {
  readonly url: string
  readonly callers: number
  readonly chatModel: string
  readonly embedModel: string
  readonly predict: number
  readonly clientTimeoutMs: number
}

class CallFailed extends Error {
  constructor(
    readonly label: string,
    readonly body: string
  ) {
    super(label)
  }
}

const post = async (url: string, body: unknown, timeoutMs: number): Promise<Response> => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs)
  })
  if (response.status < 200 || response.status > 299) {
    throw new CallFailed(`HTTP ${response.status}`, await response.text().catch(() => ""))
  }
  return response
}

const badBody = (text: string) => new CallFailed("bad body", text)

const unary = async (response: Response, whole: (body: any) => boolean) => {
  const text = await response.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw badBody(text)
  }
  if (!whole(body)) throw badBody(text)
}

/** Reads an NDJSON stream to its end; broken unless every line parses, none is an error, and the last is done. */
const ndjson = async (response: Response) => {
  let text: string
  try {
    text = await response.text()
  } catch (e) {
    if (e instanceof Error && e.name === "TimeoutError") throw e
    throw new CallFailed("broken stream", String(e))
  }
  const lines = text.split("\n").filter((l) => l.trim().length > 0)
  let last: { done?: unknown; error?: unknown } | undefined
  for (const line of lines) {
    try {
      last = JSON.parse(line) as typeof last
    } catch {
      throw new CallFailed("broken stream", line)
    }
    if (last?.error !== undefined) throw new CallFailed("broken stream", line)
  }
  if (last?.done !== true) throw new CallFailed("broken stream", lines.at(-1) ?? "(empty)")
}

const prompt = (kind: Kind, n: number) =>
  kind !== "chat stream" && n % 10 === 0 ? `soak repeated question ${(n / 10) % 20}` : `soak ${kind} ${n}: answer`

const call = (s: Settings, kind: Kind, n: number): Promise<void> => {
  const content = prompt(kind, n)
  const messages = [{ role: "user", content }]
  switch (kind) {
    case "chat":
      return post(
        `${s.url}/api/chat`,
        { model: s.chatModel, messages, stream: false, options: { num_predict: s.predict } },
        s.clientTimeoutMs
      ).then((r) => unary(r, (b) => b?.done === true && typeof b?.message?.content === "string"))
    case "chat stream":
      return post(
        `${s.url}/api/chat`,
        { model: s.chatModel, messages, stream: true, options: { num_predict: s.predict } },
        s.clientTimeoutMs
      ).then(ndjson)
    case "embed":
      return post(`${s.url}/api/embed`, { model: s.embedModel, input: [content] }, s.clientTimeoutMs).then((r) =>
        unary(r, (b) => Array.isArray(b?.embeddings) && b.embeddings.length === 1 && b.embeddings[0].length > 0)
      )
    case "openai chat":
      return post(
        `${s.url}/v1/chat/completions`,
        { model: s.chatModel, messages, max_tokens: s.predict },
        s.clientTimeoutMs
      ).then((r) => unary(r, (b) => typeof b?.choices?.[0]?.message?.content === "string"))
  }
}

const label = (e: unknown): string => {
  if (e instanceof CallFailed) return e.label
  if (e instanceof Error && e.name === "TimeoutError") return "client timeout"
  const cause = e instanceof Error ? (e.cause as { code?: string } | undefined) : undefined
  return `network ${cause?.code ?? (e instanceof Error ? e.message : String(e)).slice(0, 40)}`
}

/** The traffic's running state: what every kind did so far, and the latencies since the last `takeWindow`. */
export class Traffic {
  readonly tallies = new Map<Kind, Tally>(kinds.map((k) => [k, { ok: 0, failed: new Map(), latencies: [] }]))
  /** The first body (or error text) seen per failure label. */
  readonly examples = new Map<string, string>()
  private window: Array<number> = []
  private issued = 0
  private readonly perKind = new Map<Kind, number>()
  private stopping = false

  constructor(private readonly settings: Settings) {}

  /** Starts the callers; resolves when `stop` was called and every call in flight has ended. */
  run(): Promise<void> {
    return Promise.all(Array.from({ length: this.settings.callers }, () => this.caller())).then(() => undefined)
  }

  stop(): void {
    this.stopping = true
  }

  /** Latencies (ms) of the calls that succeeded since the previous call of this method. */
  takeWindow(): Array<number> {
    const w = this.window
    this.window = []
    return w
  }

  private async caller() {
    while (!this.stopping) {
      const kind = mix[this.issued++ % mix.length]!
      const n = this.perKind.get(kind) ?? 0
      this.perKind.set(kind, n + 1)
      const tally = this.tallies.get(kind)!
      const t0 = performance.now()
      try {
        await call(this.settings, kind, n)
        const ms = performance.now() - t0
        tally.ok++
        tally.latencies.push(ms)
        this.window.push(ms)
      } catch (e) {
        const key = label(e)
        tally.failed.set(key, (tally.failed.get(key) ?? 0) + 1)
        if (!this.examples.has(key)) this.examples.set(key, e instanceof CallFailed ? e.body : String(e))
      }
    }
  }
}

/** Failures summed over kinds, by label. */
export const failuresByLabel = (tallies: ReadonlyMap<Kind, Tally>): Map<string, number> => {
  const out = new Map<string, number>()
  for (const t of tallies.values()) for (const [k, n] of t.failed) out.set(k, (out.get(k) ?? 0) + n)
  return out
}
