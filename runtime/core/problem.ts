/**
 * RFC 7807 answers: the one place a problem document becomes an HTTP response, so the management API, the
 * application HTTP server and the artifact repository answer errors alike.
 */

import { AetherError, type Problem, problemOf } from "./errors.ts";

/** The header that carries a request's id on every hop and on its answer. */
export const REQUEST_ID_HEADER = "x-request-id";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export interface ProblemResponseOptions {
  /** Fields the document carries after its own, for example `instance` (the request path). */
  fields?: Readonly<Record<string, unknown>>;
  /** The request's id: the document's last field `requestId` and the `x-request-id` header. */
  requestId?: string;
  /** More headers, for example `allow` on a 405. */
  headers?: Readonly<Record<string, string>>;
}

/**
 * An error, or a problem document built elsewhere (a slice's own error), as a response: the document's
 * status, `content-type: application/problem+json`, the request id when given, and `retry-after` when the
 * document says when to come back (`retryAfterSeconds`, which `overloaded` errors carry in their extra).
 */
export function problemResponse(
  error: AetherError | Problem,
  options: ProblemResponseOptions = {},
): Response {
  const document: Problem = error instanceof AetherError
    ? problemOf(error, options.fields)
    : { ...error, ...options.fields };
  if (options.requestId !== undefined) document.requestId = options.requestId;
  const response = new Response(JSON.stringify(document), { status: document.status });
  // Headers are set one by one: a headers record in the Response init costs Deno about 4 µs per response.
  response.headers.set("content-type", PROBLEM_CONTENT_TYPE);
  if (options.requestId !== undefined) response.headers.set(REQUEST_ID_HEADER, options.requestId);
  const retryAfter = retryAfterHeader(document.retryAfterSeconds);
  if (retryAfter !== undefined) response.headers.set("retry-after", retryAfter);
  for (const [name, value] of Object.entries(options.headers ?? {})) response.headers.set(name, value);
  return response;
}

/** `retry-after` takes whole seconds: a fraction rounds up, so a client never comes back too early. */
function retryAfterHeader(seconds: unknown): string | undefined {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return undefined;
  return String(Math.ceil(seconds));
}
