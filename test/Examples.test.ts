/**
 * The examples under examples/ run as a user would run them, and their output is what their comments promise.
 * examples/embedding: Sluice's Layers in an Effect program, over the built-in simulator; also type-checked.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)

describe("examples/embedding", () => {
  it("runs: a chat, a cache hit, a stream, an embed and a typed error", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", "examples/embedding/main.ts"], {
      timeout: 30_000
    })
    const lines = stdout.trim().split("\n")
    assert.match(lines[0] ?? "", /^chat: \S.+\.\.\.$/)
    assert.strictEqual(lines[1], "chat again: cache hit, served primary")
    assert.match(lines[2] ?? "", /^stream: \d+ chunks$/)
    assert.strictEqual(lines[3], "embed: 2 vectors of 768 dimensions")
    assert.strictEqual(lines[4], "typed error: ModelNotFound")
  })

  it("type-checks", async () => {
    const tsc = join("node_modules", "typescript", "bin", "tsc")
    const result = await run(process.execPath, [tsc, "--noEmit", "-p", "examples/embedding/tsconfig.json"]).then(
      () => "",
      (error: { stdout?: string }) => error.stdout ?? String(error)
    )
    assert.strictEqual(result, "")
  }, 60_000)
})
