/**
 * Test fixture: `sluice agent ...` from the TypeScript sources, for when the built bundle does not mount the
 * command yet (`agentProcess.ts` prefers the bundle). Runs like src/main.ts: SIGINT/SIGTERM interrupt the program.
 */
import { Command } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect } from "effect"
import { agent } from "../../src/Cli/Agent.js"

const sluice = Command.make("sluice").pipe(Command.withSubcommands([agent]))

Command.run(sluice, { name: "sluice", version: "test" })(process.argv).pipe(
  Effect.tapErrorCause((cause) =>
    Cause.isInterruptedOnly(cause) ? Effect.void : Console.error(`sluice: ${Cause.pretty(cause)}`)
  ),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
