/**
 * Reads a Prometheus text exposition (Sluice's `GET /metrics`) into series -> value, for benches that watch a running
 * `sluice serve` from outside. A series is its name with its label set as printed (`name{a="b"}`).
 *
 * Choices: `required` throws when a series is missing, so a renamed metric breaks the bench instead of printing
 * zeros; `sum` adds a counter over all its label sets and reads 0 when none was exported yet.
 */

export type Series = ReadonlyMap<string, number>

const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/

export const parse = (text: string): Series => {
  const out = new Map<string, number>()
  for (const l of text.split("\n")) {
    if (l.startsWith("#")) continue
    const m = line.exec(l)
    if (m !== null) out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]))
  }
  return out
}

/** GET `<url>/metrics`, parsed; throws when it does not answer 200. */
export const scrape = async (url: string, timeoutMs = 10_000): Promise<Series> => {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(timeoutMs) })
  if (response.status !== 200) throw new Error(`GET ${url}/metrics answered ${response.status}`)
  return parse(await response.text())
}

export const required = (series: Series, key: string): number => {
  const value = series.get(key)
  if (value === undefined) throw new Error(`/metrics has no ${key}`)
  return value
}

/** The sum of every label set of `name` (0 when it has none yet). */
export const sum = (series: Series, name: string): number => {
  let total = 0
  for (const [key, value] of series) if (key === name || key.startsWith(`${name}{`)) total += value
  return total
}
