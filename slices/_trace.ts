/** W3C trace context (`traceparent`) helpers; dependency-free so the sandbox runtime can use them. */

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** The same shape, without the all-zero trace and span ids the spec forbids: one match per check. */
const VALID_TRACEPARENT = /^00-(?!0{32}-)[0-9a-f]{32}-(?!0{16}-)[0-9a-f]{16}-[0-9a-f]{2}$/;

function randomHexId(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  let out = "";
  for (const b of buf) out += b.toString(16).padStart(2, "0");
  return out;
}

export function isTraceparent(value: unknown): value is string {
  return typeof value === "string" && value.length === 55 && VALID_TRACEPARENT.test(value);
}

/** A new trace with a sampled root span. */
export function newTraceparent(): string {
  return `00-${randomHexId(16)}-${randomHexId(8)}-01`;
}

/** A child span in the same trace; a malformed parent starts a new trace. */
export function childTraceparent(parent: string): string {
  const m = TRACEPARENT.exec(parent);
  if (!m || !isTraceparent(parent)) return newTraceparent();
  return `00-${m[1]}-${randomHexId(8)}-${m[3]}`;
}

export function traceIdOf(traceparent: string): string | undefined {
  return TRACEPARENT.exec(traceparent)?.[1];
}
