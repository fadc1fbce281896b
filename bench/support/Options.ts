/**
 * Scenario options: `--name value` on the command line, else the environment variable SLUICE_BENCH_<NAME> (as the
 * other scenarios' SLUICE_BENCH_SECONDS, SLUICE_BENCH_RATE, SLUICE_BENCH_RUNS), else the default. `bench/run.ts`
 * passes the flags after the scenario names on to every scenario it starts, so `npm run bench -- soak --minutes 5`
 * and `node --import tsx bench/soak.ts --minutes 5` read the same value.
 *
 * Choices: a value that is not a positive number is an error, not the default (a typo must not start an hour's run).
 */

const flagValue = (argv: ReadonlyArray<string>, name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  if (i !== -1) return argv[i + 1]
  const inline = argv.find((a) => a.startsWith(`--${name}=`))
  return inline?.slice(name.length + 3)
}

/** `--name` from `argv`, else SLUICE_BENCH_<NAME>, else `fallback`; throws when the value is not a positive number. */
export const positiveNumber = (argv: ReadonlyArray<string>, name: string, fallback: number): number => {
  const env = `SLUICE_BENCH_${name.toUpperCase().replace(/-/g, "_")}`
  const text = flagValue(argv, name) ?? process.env[env]
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`--${name} / ${env} must be a positive number, got "${text}"`)
  return value
}

/** The flags in `argv` whose names are not in `known` (a scenario refuses them rather than ignore a typo). */
export const unknownFlags = (argv: ReadonlyArray<string>, known: ReadonlyArray<string>): Array<string> =>
  argv.filter((a) => a.startsWith("--") && !known.includes(a.slice(2).split("=")[0]!))

/** The soak's length in minutes (one hour unless `--minutes` or SLUICE_BENCH_MINUTES says otherwise). */
export const soakMinutes = (argv: ReadonlyArray<string>): number => positiveNumber(argv, "minutes", 60)
