import { Agent, request } from "@effect/platform-node/Undici"
const agent = new Agent({ connections: 256 })
const [n, conc, stream] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4] === "1"]
const body = JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: "hello there" }], stream })
let next = 0
const t0 = performance.now()
const worker = async () => { while (next < n) { next++; const r = await request("http://127.0.0.1:18435/api/chat", { method: "POST", body, dispatcher: agent }); await r.body.text() } }
await Promise.all(Array.from({ length: conc }, worker))
const s = (performance.now() - t0) / 1000
console.log(`${n} in ${s.toFixed(2)}s = ${(n / s).toFixed(0)} req/s`)
process.exit(0)
