/**
 * W3C trace context (`traceparent`) helpers. Dependency-free on purpose: the slice runtime inside the sandbox
 * imports this file itself, not core/mod.ts, because a sandbox child process runs with `--no-npm` and
 * `--no-config` and core/mod.ts reaches npm packages (semver).
 */

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** The same shape, without the all-zero trace and span ids the spec forbids: one match per check. */
const VALID_TRACEPARENT = /^00-(?!0{32}-)[0-9a-f]{32}-(?!0{16}-)[0-9a-f]{16}-[0-9a-f]{2}$/;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let poolOffset = POOL_BYTES;

/**
 * `bytes` random bytes as hex, from a pool refilled by `crypto.getRandomValues` 4 KiB at a time: a call of
 * its own per id (plus the usual formatting) costs about 4 µs, a visible share of a request on the hot path.
 */
export function randomHexId(bytes: number): string {
  if (poolOffset + bytes > POOL_BYTES) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  let out = "";
  for (let i = 0; i < bytes; i++) out += HEX[pool[poolOffset + i]];
  poolOffset += bytes;
  return out;
}

/** A random id that is not all zeros (the spec forbids all-zero trace and span ids). */
function nonZeroHexId(bytes: number): string {
  let id = randomHexId(bytes);
  while (/^0+$/.test(id)) id = randomHexId(bytes);
  return id;
}

export function isTraceparent(value: unknown): value is string {
  return typeof value === "string" && value.length === 55 && VALID_TRACEPARENT.test(value);
}

/** A new trace with a sampled root span. */
export function newTraceparent(): string {
  return `00-${nonZeroHexId(16)}-${nonZeroHexId(8)}-01`;
}

/** A child span in the same trace; a malformed parent starts a new trace. */
export function childTraceparent(parent: string): string {
  const m = TRACEPARENT.exec(parent);
  if (!m || !isTraceparent(parent)) return newTraceparent();
  return `00-${m[1]}-${nonZeroHexId(8)}-${m[3]}`;
}

export function traceIdOf(traceparent: string): string | undefined {
  return TRACEPARENT.exec(traceparent)?.[1];
}
