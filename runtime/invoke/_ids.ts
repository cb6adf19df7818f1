/**
 * Request ids and trace contexts for every call that arrives without them: random hex from a pool refilled
 * 4 KiB at a time. `crypto.getRandomValues` plus the usual hex formatting costs about 4 µs per id, which is
 * a visible share of an HTTP request on the hot path; this costs a fraction of that. Ids are not secrets:
 * they only need to be unique enough to tell requests apart in logs.
 */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let offset = POOL_BYTES;

function hex(bytes: number): string {
  if (offset + bytes > POOL_BYTES) {
    crypto.getRandomValues(pool);
    offset = 0;
  }
  let out = "";
  for (let i = 0; i < bytes; i++) out += HEX[pool[offset + i]];
  offset += bytes;
  return out;
}

/** 16 hex digits. */
export function fastRequestId(): string {
  return hex(8);
}

/** A new W3C trace with a sampled root span (never the all-zero ids the spec forbids). */
export function fastTraceparent(): string {
  let trace = hex(16);
  let span = hex(8);
  while (/^0+$/.test(trace)) trace = hex(16);
  while (/^0+$/.test(span)) span = hex(8);
  return `00-${trace}-${span}-01`;
}
