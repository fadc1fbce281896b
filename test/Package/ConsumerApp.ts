/**
 * A fresh Effect application that depends on the packed `sluice` tarball, as a user would write it: its
 * package.json (the tarball plus the peer dependencies at the versions this repo tests), a strict tsconfig that
 * checks every declaration file (no `skipLibCheck`), and a main.ts that runs one chat through `Engine.layer` in
 * front of the built-in simulator. Also a Node module hook that records every module URL the process resolves,
 * so the test can say what the library entry really loads. Kept as strings: as files under test/ the repo's own
 * tsc would check them against a `sluice` that exists only once built.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"

const repo = new URL("../../", import.meta.url)
const requireFromRepo = createRequire(repo)

/** The version of `name` installed in this repo (the version the tests ran with). */
const installed = (name: string): string =>
  (JSON.parse(readFileSync(requireFromRepo.resolve(`${name}/package.json`), "utf8")) as { version: string }).version

/** The app's package.json: the tarball, every peer dependency Sluice names, and @types/node. */
export const packageJson = (tarball: string): string => {
  const sluice = JSON.parse(readFileSync(new URL("package.json", repo), "utf8")) as {
    peerDependencies: Record<string, string>
  }
  const peers = Object.keys(sluice.peerDependencies).map((name) => [name, installed(name)] as const)
  const dependencies = {
    sluice: `file:${tarball}`,
    ...Object.fromEntries(peers),
    "@types/node": installed("@types/node")
  }
  return JSON.stringify({ name: "sluice-consumer", private: true, type: "module", dependencies }, null, 2)
}

export const tsconfig = JSON.stringify(
  {
    compilerOptions: {
      target: "ES2022",
      // @effect/platform's own declarations name DOM types (Storage, MessagePort, Transferable): Effect's
      // recommended tsconfig has these libs, and a check without skipLibCheck needs them.
      lib: ["ES2022", "DOM", "DOM.Iterable"],
      module: "NodeNext",
      moduleResolution: "NodeNext",
      types: ["node"],
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      verbatimModuleSyntax: true,
      skipLibCheck: false,
      rootDir: ".",
      outDir: "out"
    },
    files: ["main.ts"]
  },
  null,
  2
)

/** One chat through the engine over the simulator, and a typed error narrowed by its tag. */
export const mainTs = `
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer } from "effect"
import { Engine, Llm, Simulator, SimulatorConfig } from "sluice"

const Ollama = Simulator.layer({ port: 0, host: "127.0.0.1", config: SimulatorConfig.fast() })
const SluiceEngine = Layer.unwrapEffect(
  Effect.map(Simulator, (ollama) => Engine.layer({ backends: [{ url: ollama.url, slots: 2 }] }))
).pipe(Layer.provide(Ollama))

const program = Effect.gen(function* () {
  const llm = yield* Llm
  const reply = yield* llm.chat({ model: "llama3.2", messages: [{ role: "user", content: "Name a river." }] })
  yield* Console.log(JSON.stringify({ role: reply.message.role, content: reply.message.content }))
  const missing = yield* llm.chat({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] }).pipe(
    Effect.as("answered"),
    Effect.catchTag("ModelNotFound", (error) => Effect.succeed(error._tag))
  )
  yield* Console.log(missing)
})

program.pipe(Effect.provide(SluiceEngine), NodeRuntime.runMain)
`

/** Loaded with \`node --import\`: registers the hooks below (module hooks run on their own thread). */
export const recordMjs = `import { register } from "node:module"
register("./record-hooks.mjs", import.meta.url)
`

/** Appends every resolved module URL to the file RECORD_FILE names. */
export const recordHooksMjs = `import { appendFileSync } from "node:fs"
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  appendFileSync(process.env.RECORD_FILE, resolved.url + "\\n")
  return resolved
}
`
