/**
 * What the gateway stamps on every response (success, refusal, 404, drain 503; Front.ts does it):
 *
 * - `x-sluice-request-id`: the client's `x-request-id` when it is sane (1–128 of `[A-Za-z0-9._:-]`), otherwise a
 *   fresh random id; it also annotates the request's logs and span;
 * - `x-sluice-overhead-ms`: the time Sluice spent on the request up to its response headers, minus the time the
 *   handler waited on the engine (`Overhead.ts`). For a stream the headers leave with the first chunk, so the
 *   overhead covers everything until then. Milliseconds with two decimals.
 */

export const requestIdHeader = "x-sluice-request-id"
export const overheadHeader = "x-sluice-overhead-ms"

const sane = /^[A-Za-z0-9._:-]{1,128}$/

const freshId = (): string => globalThis.crypto.randomUUID().replaceAll("-", "")

/** The client's `x-request-id` if it is sane, else a new random id. */
export const requestIdOf = (incoming: string | undefined): string =>
  incoming !== undefined && sane.test(incoming) ? incoming : freshId()

/** An `x-sluice-overhead-ms` value: nanoseconds as milliseconds with two decimals. */
export const overheadMs = (nanos: bigint): string => (Number(nanos < 0n ? 0n : nanos) / 1e6).toFixed(2)
