/**
 * The outbound HTTP client for slices (`ctx.infra.http.request(...)`, issue 21 item 5). Slices have no
 * network
 * permission in their sandbox; their requests leave as `@infra` call-outs to the service `http` and the node
 * makes them here, only to hosts that BOTH the calling slice's manifest declares (`outbound: [...]`) AND the
 * operator allows (`--outbound-allow host[,host]`; default: none, so nothing leaves until an operator says
 * so).
 *
 * - Hosts are compared in canonical form: the WHATWG URL parser's host (lower case, IPv4 numeric forms such
 * as
 *   `0x7f.1` made dotted-decimal, IPv6 compressed in brackets, IDNs in punycode) without a trailing dot, and
 *   a
 *   port (a bare entry means the scheme's default port: 80 for http, 443 for https). A URL with userinfo
 *   (`user@host`) is refused outright; only http and https.
 * - A request's time is bounded by its `timeoutMs` (default 10 s) and by the calling slice's deadline.
 * - Idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) are retried on a network error, a timeout of the
 *   attempt, or 502/503/504, with exponential backoff and jitter, while the deadline allows; POST and PATCH
 *   never are.
 * - A circuit breaker per (calling group, host:port): it opens after `failureThreshold` consecutive failures
 *   (network error, timeout, 5xx), refuses at once while open, lets one probe through after `coolDownMs`
 *   (half-open) and closes when that probe succeeds. Keyed by group too, so a slice that breaks a host (or
 *   makes its own calls time out) cannot open the circuit another group's slices see.
 * - Responses are read up to `maxResponseBytes` (default 1 MiB, at most 8 MiB); a larger one fails with
 *   `ResponseTooLarge` and the connection is dropped.
 * - At most MAX_IN_FLIGHT_PER_GROUP (64) requests of one group and MAX_IN_FLIGHT (512) in all are in flight
 * on a
 *   node; beyond, `TooManyRequests` (503) at once, so a slice cannot hold unbounded sockets or starve others.
 * - Redirects are followed by hand (at most 5), each target checked against both lists like the first URL;
 *   credentials (`authorization`, `cookie`) are dropped when a redirect leaves the origin.
 *
 * Not covered: DNS. A declared and allowed name is resolved by the node's resolver at each request, so a name
 * whose DNS answer changes reaches wherever it points; operators allow names they trust, or IP literals.
 */

import { AetherError, type HistogramData, LatencyHistogram } from "../core/mod.ts";
import type { KvState } from "../kv/mod.ts";
import { decodeValue, kvKeys } from "../model/mod.ts";
import type { InfraService, ServiceCall } from "./services.ts";

export const DEFAULT_HTTP_TIMEOUT_MS = 10_000;
export const MAX_HTTP_TIMEOUT_MS = 120_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
export const MAX_RESPONSE_BYTES_LIMIT = 8 * 1024 * 1024;
export const MAX_REQUEST_BODY_BYTES = 1024 * 1024;
export const MAX_REDIRECTS = 5;
export const DEFAULT_RETRIES = 2;
export const MAX_RETRIES = 5;
const MAX_HEADERS = 100;
const MAX_HEADER_VALUE_BYTES = 8 * 1024;
const MAX_URL_LENGTH = 8 * 1024;
/**
 * Breakers and metric series a node keeps, (group, host) pairs; beyond, the least recently used closed one
 * goes.
 */
export const MAX_HOST_SERIES = 1_000;
/**
 * Outbound requests one group's slices have in flight on a node at once; beyond, refused (`TooManyRequests`).
 */
export const MAX_IN_FLIGHT_PER_GROUP = 64;
/** Outbound requests a node has in flight at once, all groups together. */
export const MAX_IN_FLIGHT = 512;
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 2_000;

const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);
const METHODS = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "POST", "PATCH"]);
const RETRIED_STATUSES = new Set([502, 503, 504]);
/** Headers a slice may not set: the runtime owns routing and framing. */
const FORBIDDEN_HEADERS = new Set([
  "host",
  "connection",
  "content-length",
  "transfer-encoding",
  "upgrade",
  "keep-alive",
  "proxy-authorization",
  "te",
  "trailer",
]);
const CREDENTIAL_HEADERS = ["authorization", "cookie", "proxy-authorization"];

// ---------------------------------------------------------------------------------------------------------
// Hosts

/** A canonical host entry: `*` (operator only: any host the slice declares) or host with an optional port. */
export type HostRule = { any: true } | { any: false; host: string; port?: number };

/** The canonical host of a URL host part (`Api.Example.COM.` → `api.example.com`, `0x7f.1` → `127.0.0.1`). */
function canonicalHost(raw: string, where: string): string {
  let url: URL;
  try {
    url = new URL(`http://${raw}/`);
  } catch {
    throw new AetherError("bad_request", `${where}: ${JSON.stringify(raw)} is not a host name or IP address`);
  }
  if (url.username !== "" || url.password !== "" || url.pathname !== "/" || url.port !== "") {
    throw new AetherError("bad_request", `${where}: ${JSON.stringify(raw)} is not a host name or IP address`);
  }
  const host = url.hostname.endsWith(".") ? url.hostname.slice(0, -1) : url.hostname;
  if (host === "") throw new AetherError("bad_request", `${where}: empty host`);
  return host;
}

/**
 * Parses a host entry (`api.example.com`, `127.0.0.1:9000`, `[::1]:8080`; `*` when `allowAny`) into its
 * canonical form; a bad entry throws naming `where`.
 */
export function parseHostEntry(entry: unknown, where: string, allowAny = false): HostRule {
  if (typeof entry !== "string" || entry === "" || entry.length > 300) {
    throw new AetherError(
      "bad_request",
      `${where}: expected "host" or "host:port", got ${JSON.stringify(entry)}`,
    );
  }
  if (entry === "*") {
    if (allowAny) return { any: true };
    throw new AetherError("bad_request", `${where}: "*" is not allowed here; name each host`);
  }
  const m = entry.startsWith("[")
    ? /^(\[[^\]]+\])(?::(\d{1,5}))?$/.exec(entry)
    : /^([^:/@?#\s]+)(?::(\d{1,5}))?$/
      .exec(entry);
  if (!m) {
    throw new AetherError("bad_request", `${where}: ${JSON.stringify(entry)} is not "host" or "host:port"`);
  }
  const host = canonicalHost(m[1], where);
  if (m[2] === undefined) return { any: false, host };
  const port = Number(m[2]);
  if (port < 1 || port > 65535) {
    throw new AetherError("bad_request", `${where}: port ${m[2]} of ${JSON.stringify(entry)} is not 1-65535`);
  }
  return { any: false, host, port };
}

/** Parses a comma-separated operator list (`--outbound-allow`); empty text: nothing allowed. */
export function parseAllowList(text: string, where = "--outbound-allow"): HostRule[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s, i) =>
    parseHostEntry(s, `${where}[${i}]`, true)
  );
}

/** A request target in canonical form. */
export interface Target {
  url: URL;
  host: string;
  port: number;
  /** `host:port` (IPv6 in brackets): the breaker's and the metrics' name for it. */
  hostPort: string;
}

/** Parses a URL a slice asked for; refuses other schemes and userinfo. */
export function parseTarget(raw: unknown, base?: URL): Target {
  if (typeof raw !== "string" || raw === "" || raw.length > MAX_URL_LENGTH) {
    throw new AetherError(
      "bad_request",
      `http.request: url must be a non-empty string of at most ${MAX_URL_LENGTH} characters`,
      {
        field: "url",
        errorName: "BadRequest",
      },
    );
  }
  let url: URL;
  try {
    url = base ? new URL(raw, base) : new URL(raw);
  } catch {
    throw new AetherError(
      "bad_request",
      `http.request: url ${JSON.stringify(raw.slice(0, 200))} is not an absolute URL`,
      {
        field: "url",
      },
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new AetherError("bad_request", `http.request: url scheme ${url.protocol} is not http: or https:`, {
      field: "url",
    });
  }
  if (url.username !== "" || url.password !== "") {
    throw new AetherError("forbidden", "http.request: a URL with userinfo (user@host) is refused", {
      field: "url",
      errorName: "HostNotAllowed",
    });
  }
  const host = url.hostname.endsWith(".") ? url.hostname.slice(0, -1) : url.hostname;
  const port = url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  return { url, host, port, hostPort: `${host}:${port}` };
}

/** Does one of `rules` name the target? A rule without a port stands for ports 80 and 443. */
export function hostMatches(target: Target, rules: readonly HostRule[]): boolean {
  return rules.some((rule) =>
    rule.any ||
    (rule.host === target.host &&
      (rule.port === undefined ? target.port === 80 || target.port === 443 : rule.port === target.port))
  );
}

// ---------------------------------------------------------------------------------------------------------
// Circuit breaker

export type CircuitState = "closed" | "open" | "half-open";

export interface BreakerSettings {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** How long an open circuit refuses before it lets one probe through. */
  coolDownMs: number;
}

export const DEFAULT_BREAKER: BreakerSettings = { failureThreshold: 5, coolDownMs: 5_000 };

export class CircuitBreaker {
  #state: CircuitState = "closed";
  #failures = 0;
  #openedAtMs = 0;
  #probing = false;

  constructor(private readonly settings: BreakerSettings) {}

  /** The state now (an open circuit whose cool-down passed reads half-open). */
  state(nowMs: number): CircuitState {
    if (this.#state === "open" && nowMs - this.#openedAtMs >= this.settings.coolDownMs) return "half-open";
    return this.#state;
  }

  /** May a request go now? In half-open, only one probe at a time. */
  admit(nowMs: number): boolean {
    const state = this.state(nowMs);
    if (state === "closed") return true;
    if (state === "open" || this.#probing) return false;
    this.#state = "half-open";
    this.#probing = true;
    return true;
  }

  success(): void {
    this.#state = "closed";
    this.#failures = 0;
    this.#probing = false;
  }

  failure(nowMs: number): void {
    this.#failures++;
    this.#probing = false;
    if (this.#state === "half-open" || this.#failures >= this.settings.failureThreshold) {
      this.#state = "open";
      this.#openedAtMs = nowMs;
    }
  }

  /** A request admitted as a probe that ended without a verdict (e.g. the response was too large). */
  release(): void {
    this.#probing = false;
  }

  get consecutiveFailures(): number {
    return this.#failures;
  }

  /** Epoch ms when the circuit last opened (0: never). */
  get openedAtMs(): number {
    return this.#openedAtMs;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Metrics per (group, host)

/** One (group, host:port) on one node: counters since the node started, and the circuit's state now. */
export interface OutboundHostStats {
  group: string;
  host: string;
  /** Requests that reached the network (each attempt counts, redirects too). */
  requests: number;
  /** Attempts that failed: network error, timeout, 5xx. */
  failures: number;
  /** Attempts made again after a failure (idempotent methods only). */
  retries: number;
  /** Calls refused without a request: the circuit was open. */
  rejected: number;
  circuit: CircuitState;
  consecutiveFailures: number;
  /** Attempt latency, ms (until the response's headers and body were read). */
  latency: HistogramData;
}

interface HostSeries {
  breaker: CircuitBreaker;
  requests: number;
  failures: number;
  retries: number;
  rejected: number;
  latency: LatencyHistogram;
}

// ---------------------------------------------------------------------------------------------------------
// The client

export interface HttpClientOptions {
  /** What the operator allows now (read at every request, so a live setting may feed it). */
  allowed(): readonly HostRule[];
  /** The hosts the manifest of `coordinates` declares (`outbound`), undefined when unknown. */
  declared(coordinates: string): readonly string[] | undefined;
  breaker?: BreakerSettings;
  /** In-flight limits (default MAX_IN_FLIGHT_PER_GROUP, MAX_IN_FLIGHT). */
  maxInFlightPerGroup?: number;
  maxInFlight?: number;
  /** Wall clock for the breaker (tests). */
  nowMs?: () => number;
}

/** What a slice sends (`ctx.infra.http.request`). */
export interface OutboundRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  maxResponseBytes: number;
  retries: number;
  responseType: "text" | "base64";
}

/** What it gets back. */
export interface OutboundResponse {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  /** UTF-8 text (invalid sequences replaced) or base64 (`responseType: "base64"`). */
  body: string;
  /** The final URL, after redirects. */
  url: string;
  redirects: number;
  attempts: number;
}

export interface HttpClient {
  /** Answers `http.request` service calls (the `ServiceCall` shape of the infrastructure services). */
  serve(call: ServiceCall): Promise<OutboundResponse>;
  /** Every (group, host) series on this node, for the metrics and GET /api/v1/outbound. */
  stats(): OutboundHostStats[];
  /** The hosts the operator allows, as entered (canonical). */
  allowedText(): string[];
}

export function createHttpClient(options: HttpClientOptions): HttpClient {
  const settings = options.breaker ?? DEFAULT_BREAKER;
  const now = options.nowMs ?? Date.now;
  const series = new Map<string, HostSeries>();
  const perGroupLimit = options.maxInFlightPerGroup ?? MAX_IN_FLIGHT_PER_GROUP;
  const nodeLimit = options.maxInFlight ?? MAX_IN_FLIGHT;
  const inFlightByGroup = new Map<string, number>();
  let inFlight = 0;

  const seriesOf = (group: string, hostPort: string): HostSeries => {
    const key = `${group} ${hostPort}`;
    let s = series.get(key);
    if (s) {
      series.delete(key); // re-inserted: the map's order is least recently used first
      series.set(key, s);
      return s;
    }
    if (series.size >= MAX_HOST_SERIES) evictOne();
    s = {
      breaker: new CircuitBreaker(settings),
      requests: 0,
      failures: 0,
      retries: 0,
      rejected: 0,
      latency: new LatencyHistogram(),
    };
    series.set(key, s);
    return s;
  };
  const evictOne = () => {
    const t = now();
    for (const [key, s] of series) {
      if (s.breaker.state(t) === "closed") {
        series.delete(key);
        return;
      }
    }
    series.delete(series.keys().next().value!); // all open: the oldest goes anyway (bounded memory first)
  };

  const checkAllowed = (target: Target, declared: readonly HostRule[]) => {
    if (!hostMatches(target, declared)) {
      throw new AetherError(
        "forbidden",
        `http.request: ${target.hostPort} is not among the hosts this slice declares (manifest outbound)`,
        { errorName: "HostNotAllowed" },
      );
    }
    if (!hostMatches(target, options.allowed())) {
      throw new AetherError(
        "forbidden",
        `http.request: ${target.hostPort} is not allowed by the operator of this node (--outbound-allow)`,
        { errorName: "HostNotAllowed" },
      );
    }
  };

  const serve = async (call: ServiceCall): Promise<OutboundResponse> => {
    if (call.method !== "request") {
      throw new AetherError("not_found", `http has no method "${call.method}" (methods: request)`);
    }
    const coordinates = call.from;
    const declaredText = coordinates === undefined ? undefined : options.declared(coordinates);
    if (!declaredText || declaredText.length === 0) {
      throw new AetherError(
        "forbidden",
        'http.request: this slice declares no outbound hosts (manifest outbound: ["host", ...])',
        { errorName: "HostNotAllowed" },
      );
    }
    const declared = declaredText.flatMap((entry, i) => {
      try {
        return [parseHostEntry(entry, `outbound[${i}]`)];
      } catch {
        return [];
      }
    });
    const request = parseRequest(call.payload);
    const first = parseTarget(request.url);
    checkAllowed(first, declared);
    // A slice cannot hold unbounded sockets: a limit per group (so one group cannot starve the others) and
    // one per node.
    const groupInFlight = inFlightByGroup.get(call.group) ?? 0;
    if (groupInFlight >= perGroupLimit || inFlight >= nodeLimit) {
      throw new AetherError(
        "overloaded",
        groupInFlight >= perGroupLimit
          ? `http.request: ${perGroupLimit} requests of group ${call.group} already in flight on this node`
          : `http.request: ${nodeLimit} outbound requests already in flight on this node`,
        { errorName: "TooManyRequests" },
      );
    }
    inFlightByGroup.set(call.group, groupInFlight + 1);
    inFlight++;
    try {
      return await send(call, request, first, declared);
    } finally {
      inFlight--;
      const left = (inFlightByGroup.get(call.group) ?? 1) - 1;
      if (left <= 0) inFlightByGroup.delete(call.group);
      else inFlightByGroup.set(call.group, left);
    }
  };

  const send = async (
    call: ServiceCall,
    request: OutboundRequest,
    first: Target,
    declared: readonly HostRule[],
  ): Promise<OutboundResponse> => {
    let target = first;
    let method = request.method;
    let body = request.body;
    let headers = { ...request.headers };
    let redirects = 0;
    let attempts = 0;
    const endMs = Math.min(call.deadlineMs, Date.now() + request.timeoutMs);
    for (;;) {
      const s = seriesOf(call.group, target.hostPort);
      const result = await attemptWithRetries(s, target, method, headers, body, request, endMs);
      attempts += result.attempts;
      const response = result.response;
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && response.status !== 304 && location !== null) {
        await response.body?.cancel();
        if (redirects >= MAX_REDIRECTS) {
          throw new AetherError("unavailable", `http.request: more than ${MAX_REDIRECTS} redirects`, {
            errorName: "TooManyRedirects",
          });
        }
        const next = parseTarget(location, target.url);
        try {
          checkAllowed(next, declared);
        } catch (e) {
          throw new AetherError(
            "forbidden",
            `http.request: a redirect to ${next.hostPort} was refused: ${
              (e as Error).message.replace(/^http\.request: /, "")
            }`,
            { errorName: "HostNotAllowed" },
          );
        }
        if (next.url.origin !== target.url.origin) {
          headers = Object.fromEntries(
            Object.entries(headers).filter(([k]) => !CREDENTIAL_HEADERS.includes(k)),
          );
        }
        if (
          response.status === 303 ||
          ((response.status === 301 || response.status === 302) && method === "POST")
        ) {
          method = method === "HEAD" ? "HEAD" : "GET";
          body = undefined;
        }
        target = next;
        redirects++;
        continue;
      }
      const bytes = await readLimited(response, request.maxResponseBytes, s);
      return {
        status: response.status,
        statusText: response.statusText,
        headers: Object.fromEntries(response.headers),
        body: request.responseType === "base64" ? base64(bytes) : new TextDecoder().decode(bytes),
        url: target.url.href,
        redirects,
        attempts,
      };
    }
  };

  /**
   * One hop (no redirect following): attempts until a non-retryable answer, the retries or the time run out.
   */
  const attemptWithRetries = async (
    s: HostSeries,
    target: Target,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    request: OutboundRequest,
    endMs: number,
  ): Promise<{ response: Response; attempts: number }> => {
    const retries = IDEMPOTENT.has(method) ? request.retries : 0;
    for (let attempt = 1;; attempt++) {
      if (!s.breaker.admit(now())) {
        s.rejected++;
        throw new AetherError(
          "unavailable",
          `http.request: the circuit for ${target.hostPort} is open after ` +
            `${s.breaker.consecutiveFailures} consecutive failures; retry after ${settings.coolDownMs} ms`,
          { errorName: "CircuitOpen" },
        );
      }
      const leftMs = endMs - Date.now();
      if (leftMs <= 0) {
        s.breaker.release();
        throw new AetherError("timeout", `http.request: no time left for ${target.hostPort}`, {
          errorName: "Timeout",
        });
      }
      s.requests++;
      if (attempt > 1) s.retries++;
      const startedAt = performance.now();
      let failure: AetherError | undefined;
      let response: Response | undefined;
      try {
        response = await fetch(target.url, {
          method,
          headers,
          body: body === undefined || method === "GET" || method === "HEAD" ? undefined : body,
          redirect: "manual",
          signal: AbortSignal.timeout(leftMs),
        });
      } catch (e) {
        const timedOut = (e as Error).name === "TimeoutError" || (e as Error).name === "AbortError";
        failure = timedOut
          ? new AetherError(
            "timeout",
            `http.request: ${target.hostPort} did not answer within ${leftMs} ms`,
            {
              errorName: "Timeout",
            },
          )
          : new AetherError("unavailable", `http.request: ${target.hostPort}: ${(e as Error).message}`, {
            errorName: "ConnectionFailed",
          });
      }
      s.latency.observe(performance.now() - startedAt);
      const failed = failure !== undefined || response!.status >= 500;
      if (failed) s.failures++, s.breaker.failure(now());
      else s.breaker.success();
      const retryable = failure !== undefined || RETRIED_STATUSES.has(response!.status);
      const waitMs = backoffMs(attempt);
      if (!retryable || attempt > retries || Date.now() + waitMs >= endMs) {
        if (failure) throw failure;
        return { response: response!, attempts: attempt };
      }
      await response?.body?.cancel();
      await new Promise((r) => setTimeout(r, waitMs));
    }
  };

  return {
    serve,
    stats: () => {
      const t = now();
      return [...series].map(([key, s]) => {
        const space = key.indexOf(" ");
        return {
          group: key.slice(0, space),
          host: key.slice(space + 1),
          requests: s.requests,
          failures: s.failures,
          retries: s.retries,
          rejected: s.rejected,
          circuit: s.breaker.state(t),
          consecutiveFailures: s.breaker.consecutiveFailures,
          latency: s.latency.data(),
        };
      });
    },
    allowedText: () => options.allowed().map((r) => r.any ? "*" : r.port ? `${r.host}:${r.port}` : r.host),
  };
}

/** Exponential backoff with jitter: 100, 200, 400 ms ... (±50 %), at most 2 s. */
function backoffMs(attempt: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return Math.round(base * (0.5 + Math.random()));
}

async function readLimited(response: Response, maxBytes: number, s: HostSeries): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? "NaN");
  const tooLarge = () =>
    new AetherError(
      "too_large",
      `http.request: the response is larger than ${maxBytes} bytes (maxResponseBytes)`,
      {
        errorName: "ResponseTooLarge",
      },
    );
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return new Uint8Array();
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof AetherError) throw e;
    s.failures++;
    throw new AetherError(
      "unavailable",
      `http.request: reading the response failed: ${(e as Error).message}`,
      {
        errorName: "ConnectionFailed",
      },
    );
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function bad(field: string, message: string): AetherError {
  return new AetherError("bad_request", `http.request: ${field} ${message}`, { field });
}

function intField(
  payload: Record<string, unknown>,
  field: string,
  min: number,
  max: number,
  fallback: number,
): number {
  const v = payload[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw bad(field, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Checks a slice's request field by field; each error names the field. */
export function parseRequest(payload: Record<string, unknown>): OutboundRequest {
  const method = payload.method === undefined ? "GET" : payload.method;
  if (typeof method !== "string" || !METHODS.has(method.toUpperCase())) {
    throw bad("method", `must be one of ${[...METHODS].join(", ")}, got ${JSON.stringify(method)}`);
  }
  const headers: Record<string, string> = {};
  const rawHeaders = payload.headers ?? {};
  if (rawHeaders === null || typeof rawHeaders !== "object" || Array.isArray(rawHeaders)) {
    throw bad("headers", "must be an object of strings");
  }
  const entries = Object.entries(rawHeaders as Record<string, unknown>);
  if (entries.length > MAX_HEADERS) throw bad("headers", `has more than ${MAX_HEADERS} entries`);
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(lower)) throw bad(`headers.${name}`, "is not a header name");
    if (FORBIDDEN_HEADERS.has(lower)) throw bad(`headers.${name}`, "is set by the runtime, not by slices");
    if (typeof value !== "string" || value.length > MAX_HEADER_VALUE_BYTES || /[\r\n\0]/.test(value)) {
      throw bad(
        `headers.${name}`,
        `must be a string of at most ${MAX_HEADER_VALUE_BYTES} characters without CR/LF`,
      );
    }
    headers[lower] = value;
  }
  const body = payload.body;
  if (body !== undefined && body !== null) {
    if (typeof body !== "string") throw bad("body", "must be a string (JSON.stringify objects yourself)");
    if (new TextEncoder().encode(body).byteLength > MAX_REQUEST_BODY_BYTES) {
      throw bad("body", `is over ${MAX_REQUEST_BODY_BYTES} bytes`);
    }
  }
  const responseType = payload.responseType ?? "text";
  if (responseType !== "text" && responseType !== "base64") {
    throw bad("responseType", `must be "text" or "base64", got ${JSON.stringify(responseType)}`);
  }
  return {
    url: payload.url as string,
    method: method.toUpperCase(),
    headers,
    ...(typeof body === "string" ? { body } : {}),
    timeoutMs: intField(payload, "timeoutMs", 1, MAX_HTTP_TIMEOUT_MS, DEFAULT_HTTP_TIMEOUT_MS),
    maxResponseBytes: intField(
      payload,
      "maxResponseBytes",
      1,
      MAX_RESPONSE_BYTES_LIMIT,
      DEFAULT_MAX_RESPONSE_BYTES,
    ),
    retries: intField(payload, "retries", 0, MAX_RETRIES, DEFAULT_RETRIES),
    responseType,
  };
}

/**
 * The hosts a published artifact's manifest declares (`outbound`), from the artifact record; none when
 * unknown.
 */
export function declaredOutbound(state: KvState, coordinates: string): string[] | undefined {
  try {
    const entry = state.get(kvKeys.artifact(coordinates));
    if (!entry) return undefined;
    const manifest = decodeValue("artifact", entry.value).manifest as { outbound?: unknown };
    return Array.isArray(manifest.outbound) ? manifest.outbound.filter((s) => typeof s === "string") : [];
  } catch {
    return undefined;
  }
}

/** The catalog row: served by the node (no store), reached through `requires: ["http"]`. */
export const HTTP_SERVICE: InfraService = {
  name: "http",
  version: "1.0.0",
  description:
    "outbound HTTP to hosts the slice declares (outbound) and the operator allows (--outbound-allow): " +
    "timeouts, retries, circuit breakers",
  methods: ["request"],
};
