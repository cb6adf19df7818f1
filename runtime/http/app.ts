/**
 * The application HTTP handler: an external request becomes a slice call, the outcome becomes the response.
 *
 * 1. The request id is the `x-request-id` header when it is 1-128 URL-safe characters, else a new one; every
 *    response carries it in `x-request-id` (and every problem document in `requestId`). A W3C `traceparent`
 *    header continues the caller's trace (the slice call is a child span); otherwise a trace starts here.
 *    With a span sink, the request is recorded as an `http` span (runtime/invoke/spans.ts), the parent of
 *    the route's call span.
 * 2. The route table (route_table.ts) picks the slice method: 404 no route, 405 wrong method (with `Allow`).
 * 3. The request: the JSON body (at most `maxBodyBytes`, else 413; malformed JSON 400; a GET or HEAD body is
 *    ignored), then the declared query parameters, then the path parameters, merged into one object (later
 *    ones win on a name clash).
 *    A body that is not an object (an array, a string) is passed as it is when the route has no parameters;
 *    otherwise it is a 400. No body is `{}` plus the parameters. Parameter values are strings.
 * 4. The call goes through the SliceInvoker (local instance first, else over the mesh to a node that has one,
 *    with its retries and failover), with the deadline from `x-aether-timeout-ms` (which can only shorten the
 *    slice's configured timeout; default 30 s).
 * 5. The outcome: the value as JSON with status 200 (204 when the method returned nothing), or the status and
 *    headers the slice chose with `respond()`; the slice's error as an RFC 7807 problem document with the
 *    status from the slice's error mapping; 503 when no live instance could serve it, 504 past the deadline.
 */

import {
  AetherError,
  childTraceparent,
  isTraceparent,
  isVersion,
  type Logger,
  type MetricsRecorder,
  newTraceparent,
  type Problem,
  PROBLEM_TYPE,
  problemResponse as problemAnswer,
  randomHexId,
  REQUEST_ID_HEADER,
  UNMATCHED_ROUTE,
} from "../core/mod.ts";
import type { InvokeOutcome } from "../sandbox/mod.ts";
import {
  type CallOptions,
  type CallTarget,
  isRequestId,
  MAX_CALL_TIMEOUT_MS,
  newRequestId,
  spanClockMs,
  type SpanRecord,
  type SpanSink,
  withSpanId,
} from "../invoke/mod.ts";
import type { RouteDefinition, RouteTable } from "./route_table.ts";

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export { REQUEST_ID_HEADER };
export const TIMEOUT_HEADER = "x-aether-timeout-ms";
/** Names the one version a preview request must reach (blue-green checks before promotion). */
export const VERSION_HEADER = "x-aether-version";
/** Carries the node's preview secret; without it (or with no secret configured) VERSION_HEADER is ignored. */
export const PREVIEW_SECRET_HEADER = "x-aether-preview-secret";

export interface AppInvoker {
  invoke(
    target: string | CallTarget,
    method: string,
    request: unknown,
    options?: CallOptions,
  ): Promise<InvokeOutcome>;
}

export interface AppHandlerOptions {
  /** The current route table (rebuilt by the caller when routes change). */
  routes(): RouteTable;
  invoker: AppInvoker;
  log: Logger;
  maxBodyBytes?: number;
  /** Records each request as an `http` span; none: no tracing cost. */
  spans?: SpanSink;
  /** This node's id (in its spans). */
  node?: string;
  /** Records each request by route template and status class with its latency; none: nothing recorded. */
  metrics?: MetricsRecorder;
  /**
   * The shared preview secret (`aether node --preview-secret`): a request carrying it in
   * PREVIEW_SECRET_HEADER and a version in VERSION_HEADER reaches only that version. None: the version
   * header is ignored, so nobody outside the operators can pick an unreleased version by default.
   */
  previewSecret?: string;
}

/** HTTP methods kept as themselves in metric labels; any other is counted as `OTHER` (labels stay bounded). */
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);

/** The route a request matched, for the metrics recorder (the template, never the raw path). */
interface RouteHolder {
  route: string;
}

/** The longest path an `http` span keeps in its name (the ring's memory bound counts on it). */
const MAX_SPAN_PATH_CHARS = 200;

export type AppHandler = (request: Request) => Promise<Response>;

/** Response headers a slice may not set: they belong to the HTTP layer. */
const RESERVED_HEADERS = new Set([
  "connection",
  "content-length",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  REQUEST_ID_HEADER,
]);

export function createAppHandler(options: AppHandlerOptions): AppHandler {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const log = options.log;
  const spans = options.spans;
  const node = options.node ?? "";
  const metrics = options.metrics;

  // Every property of a Deno.serve request (url, method, headers, body) is fetched from Rust when first
  // read, and a response with headers of its own leaves Deno's fastest path: each costs an HTTP request
  // microseconds (tests/bench/invoke_bench.ts), so the handler reads each once and only what it needs.
  return async (request: Request): Promise<Response> => {
    const debug = log.enabled("debug");
    const startedAt = debug ? performance.now() : 0;
    const headers = request.headers;
    const incoming = headers.get(REQUEST_ID_HEADER);
    const requestId = incoming !== null && isRequestId(incoming) ? incoming : newRequestId();
    const { path, query } = splitUrl(request.url);
    const method = request.method;
    const span = spans ? startSpan(headers.get("traceparent"), requestId) : undefined;
    const matched: RouteHolder | undefined = metrics ? { route: UNMATCHED_ROUTE } : undefined;
    const metricsStart = metrics ? performance.now() : 0;
    let response: Response;
    try {
      response = await handle(request, headers, method, path, query, requestId, span, matched);
    } catch (e) {
      response = errorResponse(e, path, requestId);
      if (response.status >= 500) {
        log.warn("http request failed", {
          requestId,
          method,
          path,
          status: response.status,
          error: (e as Error).message,
        });
      }
    }
    if (span) recordSpan(span, method, path, response.status);
    if (matched) {
      metrics!.route(KNOWN_METHODS.has(method) ? method : "OTHER", matched.route)
        .record(response.status, performance.now() - metricsStart);
    }
    if (debug) {
      log.debug("http request", {
        requestId,
        method,
        path,
        status: response.status,
        ms: Math.round((performance.now() - startedAt) * 10) / 10,
      });
    }
    return response;
  };

  async function handle(
    request: Request,
    headers: Headers,
    method: string,
    path: string,
    query: string,
    requestId: string,
    span: SpanRecord | undefined,
    matched: RouteHolder | undefined,
  ): Promise<Response> {
    const match = options.routes().match(method, path);
    if (match.kind === "not_found") {
      await discard(request);
      badPathEncoding(path);
      throw new AetherError("not_found", `no route for ${method} ${path}`);
    }
    if (match.kind === "method_not_allowed") {
      await discard(request);
      return problemResponse(
        {
          type: `${PROBLEM_TYPE}method_not_allowed`,
          title: "method not allowed",
          status: 405,
          detail: `${path} does not take ${method}; it takes ${match.allowed.join(", ")}`,
        },
        path,
        requestId,
        { allow: match.allowed.join(", ") },
      );
    }
    const route = match.route;
    if (matched) matched.route = route.path;
    const body = mayHaveBody(request, method) ? await readJson(request, maxBodyBytes) : undefined;
    const callRequest = buildRequest(route, body, match.params, query);
    const timeoutMs = timeoutOf(headers.get(TIMEOUT_HEADER));
    let traceparent: string | undefined;
    if (span) {
      span.slice = route.slice;
      span.method = route.method;
      traceparent = withSpanId(span.traceparent, randomHexId(8));
    } else {
      const traceHeader = headers.get("traceparent");
      traceparent = traceHeader !== null && isTraceparent(traceHeader)
        ? childTraceparent(traceHeader)
        : undefined;
    }
    const preview = previewVersion(headers);
    const target = preview === undefined ? route.slice : `${route.slice}:${preview}`;
    const outcome = await options.invoker.invoke(target, route.method, callRequest, {
      requestId,
      traceparent,
      parentTraceparent: span?.traceparent,
      timeoutMs,
      from: "http",
    });
    return outcomeResponse(outcome, route, path, requestId, log);
  }

  /** The version a preview request names, when it carries the node's preview secret; else undefined. */
  function previewVersion(headers: Headers): string | undefined {
    const secret = options.previewSecret;
    if (secret === undefined) return undefined;
    const version = headers.get(VERSION_HEADER);
    if (version === null) return undefined;
    const offered = headers.get(PREVIEW_SECRET_HEADER);
    if (offered === null || !sameSecret(offered, secret)) {
      throw new AetherError(
        "forbidden",
        `header ${VERSION_HEADER} needs header ${PREVIEW_SECRET_HEADER} with this node's preview secret`,
      );
    }
    if (!isVersion(version)) {
      throw new AetherError(
        "bad_request",
        `header ${VERSION_HEADER}: "${version}" is not a version like 1.2.0`,
      );
    }
    return version;
  }

  /** The request's `http` span, recorded when the response is made (one object, filled in as it goes). */
  function startSpan(traceHeader: string | null, requestId: string): SpanRecord {
    const valid = traceHeader !== null && isTraceparent(traceHeader);
    return {
      kind: "http",
      // A child of the caller's span, or a new trace.
      traceparent: valid ? withSpanId(traceHeader, randomHexId(8)) : newTraceparent(),
      parent: valid ? traceHeader : undefined,
      requestId,
      node,
      name: undefined,
      slice: undefined,
      method: undefined,
      startMs: spanClockMs(),
      durationMs: 0,
      outcome: "ok",
      status: undefined,
    };
  }

  function recordSpan(span: SpanRecord, method: string, path: string, status: number): void {
    span.durationMs = spanClockMs() - span.startMs;
    span.name = `${method} ${path.length > MAX_SPAN_PATH_CHARS ? path.slice(0, MAX_SPAN_PATH_CHARS) : path}`;
    span.status = status;
    if (status >= 400) span.outcome = "error";
    try {
      spans!.record(span);
    } catch {
      // Dropped: a sink that throws (it must not) never costs the request its response.
    }
  }
}

/**
 * Whether the request's body is read. A GET or HEAD body has no defined meaning (RFC 9110, 9.3.1) and is
 * ignored: not even looking at `request.body` spares every GET the cost of materializing it.
 */
function mayHaveBody(request: Request, method: string): boolean {
  return method !== "GET" && method !== "HEAD" && request.body !== null;
}

/** Path and raw query of an absolute request URL, without the cost of `new URL`. */
export function splitUrl(url: string): { path: string; query: string } {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return { path: "/", query: "" };
  const q = url.indexOf("?", start);
  const hash = url.indexOf("#", start);
  const end = hash < 0 ? url.length : hash;
  return q < 0 || q > end
    ? { path: url.slice(start, end), query: "" }
    : { path: url.slice(start, q), query: url.slice(q + 1, end) };
}

function timeoutOf(header: string | null): number | undefined {
  if (header === null) return undefined;
  if (!/^[1-9]\d{0,8}$/.test(header) || Number(header) > MAX_CALL_TIMEOUT_MS) {
    throw new AetherError(
      "bad_request",
      `header ${TIMEOUT_HEADER}: "${header}" is not a number of milliseconds from 1 to ${MAX_CALL_TIMEOUT_MS}`,
    );
  }
  return Number(header);
}

/** Reads the body (bounded) and parses it as JSON; undefined when there is none. */
export async function readJson(request: Request, maxBytes: number): Promise<unknown> {
  if (request.body === null) return undefined;
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await discard(request);
    throw new AetherError("too_large", `the request body has ${declared} bytes; the limit is ${maxBytes}`);
  }
  const text = declared !== null ? await request.text() : await readBounded(request.body, maxBytes);
  if (text.length > maxBytes) {
    throw new AetherError("too_large", `the request body is larger than the limit of ${maxBytes} bytes`);
  }
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AetherError("bad_request", `the request body is not valid JSON: ${(e as Error).message}`);
  }
}

async function readBounded(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new AetherError("too_large", `the request body is larger than the limit of ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

async function discard(request: Request): Promise<void> {
  await request.body?.cancel().catch(() => {});
}

/** Body, declared query parameters and path parameters as one request value. */
export function buildRequest(
  route: Pick<RouteDefinition, "queryParams">,
  body: unknown,
  params: Record<string, string>,
  query: string,
): unknown {
  let fromQuery: Record<string, string> | undefined;
  if (query !== "" && route.queryParams.length > 0) {
    for (const pair of query.split("&")) {
      const eq = pair.indexOf("=");
      const name = queryText(eq < 0 ? pair : pair.slice(0, eq), "a query parameter name");
      // The first value wins (as URLSearchParams.get); only declared names are taken.
      if (!route.queryParams.includes(name) || (fromQuery !== undefined && Object.hasOwn(fromQuery, name))) {
        continue;
      }
      (fromQuery ??= Object.create(null) as Record<string, string>)[name] = queryText(
        eq < 0 ? "" : pair.slice(eq + 1),
        `query parameter ${name}`,
      );
    }
  }
  let hasParams = fromQuery !== undefined;
  for (const _ in params) {
    hasParams = true;
    break;
  }
  if (body === undefined) return hasParams ? { ...fromQuery, ...params } : {};
  const isObject = body !== null && typeof body === "object" && !Array.isArray(body);
  if (!isObject) {
    if (!hasParams) return body;
    throw new AetherError(
      "bad_request",
      "the request body must be a JSON object when the route has path or query parameters",
    );
  }
  return hasParams ? { ...body as Record<string, unknown>, ...fromQuery, ...params } : body;
}

/** A query part decoded as a form (`+` is a space), or a 400 naming `where` for bad percent-encoding. */
function queryText(text: string, where: string): string {
  const plain = text.includes("+") ? text.replaceAll("+", " ") : text;
  if (!plain.includes("%")) return plain;
  try {
    return decodeURIComponent(plain);
  } catch {
    throw new AetherError(
      "bad_request",
      `${where}: bad percent-encoding in "${text.slice(0, 100)}"; each % must start %XX bytes of UTF-8`,
    );
  }
}

/** A 400 naming the path segment when a path that matched no route has bad percent-encoding. */
function badPathEncoding(path: string): void {
  if (!path.includes("%")) return;
  for (const segment of path.split("/")) {
    try {
      decodeURIComponent(segment);
    } catch {
      throw new AetherError(
        "bad_request",
        `path ${path.slice(0, 200)}: bad percent-encoding in the segment "${segment.slice(0, 100)}"; ` +
          `each % must start %XX bytes of UTF-8`,
      );
    }
  }
}

export function outcomeResponse(
  outcome: InvokeOutcome,
  route: Pick<RouteDefinition, "slice" | "method">,
  path: string,
  requestId: string,
  log?: Logger,
): Response {
  if (!outcome.ok) {
    const error = outcome.error;
    const problem: Problem = {
      type: `${PROBLEM_TYPE}slice-error`,
      title: error.name,
      status: validStatus(error.status, 400) ?? 500,
      detail: error.message,
      slice: route.slice,
      method: route.method,
    };
    if (error.details !== undefined) problem.details = error.details;
    return problemResponse(problem, path, requestId);
  }
  if (outcome.status !== undefined && validStatus(outcome.status, 200) === undefined) {
    return invalidStatusResponse(outcome.status, route, path, requestId, log);
  }
  const status = (outcome.status as number | undefined) ?? 200;
  const noBody = status === 204 || status === 304 ||
    (outcome.value === undefined && outcome.status === undefined);
  let contentType: string | undefined;
  const extra: Array<[string, string]> = [];
  if (outcome.headers) {
    for (const [name, value] of Object.entries(outcome.headers)) {
      const lower = name.toLowerCase();
      if (RESERVED_HEADERS.has(lower) || !isHeader(lower, value)) {
        log?.warn("a slice response header was dropped", { requestId, header: name });
        continue;
      }
      if (lower === "content-type") contentType = value;
      else extra.push([lower, value]);
    }
  }
  let response: Response;
  if (noBody) response = new Response(null, { status: status === 200 ? 204 : status });
  else if (typeof outcome.value === "string" && contentType !== undefined && !/json/i.test(contentType)) {
    // A string with a non-JSON content type the slice chose (text/html, text/plain, ...) goes out as it is.
    response = new Response(outcome.value, { status });
    response.headers.set("content-type", contentType);
  } else if (contentType === undefined && status === 200) {
    response = Response.json(outcome.value ?? null); // the common case, on Deno's faster path
  } else {
    response = new Response(JSON.stringify(outcome.value ?? null), { status });
    response.headers.set("content-type", contentType ?? "application/json");
  }
  // Headers are set one by one: a headers record in the Response init costs Deno about 4 µs per response.
  response.headers.set(REQUEST_ID_HEADER, requestId);
  for (const [name, value] of extra) response.headers.set(name, value);
  return response;
}

/**
 * A slice answered with a status HTTP cannot carry (99, 101, 1000, "204", 2.5): a 500 naming the slice and
 * the status, and an error line, rather than a silent 200 that hides the slice's bug.
 */
function invalidStatusResponse(
  status: unknown,
  route: Pick<RouteDefinition, "slice" | "method">,
  path: string,
  requestId: string,
  log?: Logger,
): Response {
  const shown = JSON.stringify(status)?.slice(0, 40) ?? String(status);
  log?.error("a slice answered with an invalid HTTP status", {
    requestId,
    slice: route.slice,
    method: route.method,
    status: shown,
  });
  return problemResponse(
    {
      type: `${PROBLEM_TYPE}invalid-slice-status`,
      title: "invalid slice status",
      status: 500,
      detail: `${route.slice}.${route.method} answered with status ${shown}; a slice's status must be a ` +
        `whole number from 200 to 599`,
      slice: route.slice,
      method: route.method,
    },
    path,
    requestId,
  );
}

function validStatus(status: unknown, min: number): number | undefined {
  return typeof status === "number" && Number.isInteger(status) && status >= min && status <= 599
    ? status
    : undefined;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
// deno-lint-ignore no-control-regex -- control characters are what header values must not contain
const BAD_HEADER_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

function isHeader(name: string, value: unknown): value is string {
  return HEADER_NAME.test(name) && typeof value === "string" && !BAD_HEADER_VALUE.test(value);
}

function problemResponse(
  problem: AetherError | Problem,
  path: string,
  requestId: string,
  headers: Record<string, string> = {},
): Response {
  return problemAnswer(problem, { fields: { instance: path }, requestId, headers });
}

/** An error of the HTTP layer or the invoker as a problem document. */
export function errorResponse(e: unknown, path: string, requestId: string): Response {
  const error = e instanceof AetherError
    ? e
    : new AetherError("internal", (e as Error)?.message ?? String(e));
  return problemResponse(error, path, requestId);
}

/** Compares two secrets in time independent of where they differ (no timing oracle for the secret). */
function sameSecret(offered: string, secret: string): boolean {
  const a = new TextEncoder().encode(offered);
  const b = new TextEncoder().encode(secret);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return diff === 0;
}
