// Preloaded into a server process the memory bench measures (`node --expose-gc --import ./bench/support/gc-on-signal.mjs
// bin/sluice.mjs serve ...`): on SIGUSR2 it collects garbage three times, as bench/memory.ts does in its own process,
// and writes process.memoryUsage() as JSON to $SLUICE_BENCH_MEMORY_FILE. Plain JavaScript: no tsx in the server.
import { writeFileSync } from "node:fs"

const file = process.env.SLUICE_BENCH_MEMORY_FILE
if (file !== undefined && typeof globalThis.gc === "function") {
  const pause = () => new Promise((resolve) => setTimeout(resolve, 50))
  process.on("SIGUSR2", async () => {
    for (let i = 0; i < 3; i++) {
      globalThis.gc()
      await pause()
    }
    writeFileSync(file, JSON.stringify(process.memoryUsage()))
  })
}
