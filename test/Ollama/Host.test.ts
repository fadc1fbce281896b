/** parseHost against ollama-js `formatHost` (reference §11), invalid input, and credentials. */
import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import { decodeHost, hostname, InvalidHost, parseHost, splitCredentials } from "../../src/Ollama/Host.js"

const table: ReadonlyArray<readonly [string, string]> = [
  ["", "http://127.0.0.1:11434"],
  ["localhost", "http://localhost:11434"],
  ["example.com:8080", "http://example.com:8080"],
  [":1234", "http://127.0.0.1:1234"],
  ["http://example.com", "http://example.com:80"],
  ["https://ollama.com", "https://ollama.com:443"],
  ["http://localhost:11434/", "http://localhost:11434"],
  ["https://x.y/ollama/", "https://x.y:443/ollama"],
  ["user:pw@host", "http://user:pw@host:11434"],
  ["[::1]:11434", "http://[::1]:11434"],
  ["0.0.0.0", "http://0.0.0.0:11434"],
  ["  127.0.0.1:11434  ", "http://127.0.0.1:11434"],
  ["http://example.com:443", "http://example.com:443"]
]

describe("Host", () => {
  for (const [input, expected] of table) {
    it(`parseHost(${JSON.stringify(input)}) = ${expected}`, () => {
      assert.strictEqual(parseHost(input), expected)
      assert.deepStrictEqual(decodeHost(input), Either.right(expected))
    })
  }

  it("is idempotent", () => {
    for (const [, expected] of table) assert.strictEqual(parseHost(expected), expected)
  })

  it("rejects what is no http(s) URL", () => {
    for (const input of ["ftp://example.com", "http://", "http://exa mple.com", "example.com:99999", "::::"]) {
      const result = decodeHost(input)
      assert.isTrue(Either.isLeft(result), input)
      if (Either.isLeft(result)) {
        assert.instanceOf(result.left, InvalidHost)
        assert.strictEqual(result.left.input, input)
      }
      assert.throws(() => parseHost(input))
    }
  })

  it("names the host of a base URL, IPv6 without brackets (an IP literal's pool skips the DNS cache)", () => {
    assert.strictEqual(hostname("http://127.0.0.1:11434"), "127.0.0.1")
    assert.strictEqual(hostname("http://[::1]:11434"), "::1")
    assert.strictEqual(hostname("https://ollama.example:443/ollama"), "ollama.example")
  })

  it("splits credentials into a Basic authorization header", () => {
    const endpoint = splitCredentials(parseHost("https://al%40ice:s3cret@x.y/ollama"))
    assert.strictEqual(endpoint.url, "https://x.y:443/ollama")
    assert.strictEqual(endpoint.authorization, `Basic ${Buffer.from("al@ice:s3cret").toString("base64")}`)
    assert.deepStrictEqual(splitCredentials("http://h:1"), { url: "http://h:1", authorization: undefined })
  })
})
