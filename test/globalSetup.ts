// Rebuilds the CLI bundle before the suite, so the CLI tests run what `bin/sluice.mjs` ships from these sources.
import { execFileSync } from "node:child_process"

export default function setup() {
  execFileSync(process.execPath, ["scripts/build.mjs", "--no-types"], { stdio: "inherit" })
}
