/**
 * The load generator: an open-loop HTTP load at a fixed rate against one or more nodes.
 *
 * Open loop means request `i` is due at `start + i / rate` whatever happened to the requests before it, so a
 * slow or dead node does not lower the offered load (a closed loop, where each client waits for its answer
 * before sending again, would quietly send less exactly when the system struggles). Two things are counted
 * instead of hidden:
 * - **late** sends: a request that left more than `lateAfterMs` after it was due (the generator's own event
 *   loop fell behind; the send lag is reported);
 * - **dropped** requests: due while `concurrency` requests were already waiting for answers, so not sent at
 *   all. They count as failures: they were due, and the system under test was too slow to take them.
 *
 * Requests go round-robin over the base URLs (`urls[i % urls.length]`), so the load spreads evenly over the
 * nodes. With `failover`, a request whose connection is refused (its node is down and never saw it) goes on
 * to the next URL, as a load balancer in front of the nodes would; other errors are never retried, because a
 * request that reached a node may have been processed.
 *
 * Bodies and paths are templates (`_load_template.ts`) expanded per request. A request succeeds when it gets a
 * 2xx answer within `timeoutMs`; latency is measured from the send to the end of the response body, over
 * every request that got an HTTP answer (timeouts and connection errors are counted, not timed).
 *
 * `startLoad` returns a handle for tests that act while the load runs (kill a node, then read per-second
 * success rates and every request's outcome with its timestamps); `runLoad` waits for the report.
 */

import { AetherError } from "../core/errors.ts";
import { Rng } from "../core/rng.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import { type LatencySummary, percentile, Samples } from "./_load_stats.ts";
import { compileTemplate, type Template } from "./_load_template.ts";

export { compileTemplate, type Template, uuidFrom } from "./_load_template.ts";
export { type LatencySummary, percentile } from "./_load_stats.ts";

export const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] as const;
export const MAX_RATE_PER_SECOND = 100_000;
export const MAX_DURATION_MS = 24 * 3_600_000;
export const DEFAULT_CONCURRENCY = 1_000;
export const DEFAULT_TIMEOUT_MS = 5_000;
export const DEFAULT_LATE_AFTER_MS = 10;
/** What `describeFetchError` says when nothing listens on the port. */
const REFUSED = "Connection refused";
/** How much of a non-2xx answer's body an outcome keeps. */
const ERROR_BODY_CHARS = 400;

export interface LoadOptions {
  /** `"POST /api/v1/orders"`; the path may hold template patterns. */
  target: string;
  /** Base URLs (scheme, host, port, optional base path), used round-robin. */
  urls: readonly string[];
  ratePerSecond: number;
  durationMs: number;
  /** Body template; sent with `content-type: application/json` unless `headers` say otherwise. */
  body?: string;
  /** Where the body came from, for messages (a file name). */
  bodyLabel?: string;
  headers?: Readonly<Record<string, string>>;
  /** Most requests waiting for an answer at once; a request due beyond it is dropped. Default 1000. */
  concurrency?: number;
  /** Per request, until the whole response is read. Default 5000. */
  timeoutMs?: number;
  /**
   * When a URL refuses the connection (its node is down, so it never saw the request), send the request to
   * the next URL, as a load balancer would. Off by default: then a refused connection is a failed request.
   */
  failover?: boolean;
  /** Seeds the templates' randomness, so a run's bodies can be reproduced. */
  seed?: number;
  /** Aborting stops sending; requests in flight still finish (or time out) and are counted. */
  signal?: AbortSignal;
  /** Keep every request's outcome in the report (for tests; costs memory on long runs). */
  recordOutcomes?: boolean;
  onOutcome?: (outcome: RequestOutcome) => void;
  /** Called every `progressIntervalMs` while the load runs. */
  onProgress?: (progress: LoadProgress) => void;
  progressIntervalMs?: number;
  /** A send this much behind schedule counts as late. Default 10 ms. */
  lateAfterMs?: number;
  clock?: Clock;
}

/** ok: a 2xx; http_error: another status; timeout; error: no HTTP answer (refused, reset); dropped: not sent. */
export type OutcomeKind = "ok" | "http_error" | "timeout" | "error" | "dropped";

export interface RequestOutcome {
  /** Position in the schedule, from 0. */
  index: number;
  /** The base URL it went (or would have gone) to. */
  url: string;
  kind: OutcomeKind;
  status: number | null;
  /** Epoch milliseconds (fractional): when it was due, when it left, when its outcome was known. */
  scheduledAt: number;
  sentAt: number | null;
  endedAt: number;
  latencyMs: number | null;
  /** Why it failed: the connection error, or the start of a non-2xx answer's body (a problem document). */
  error?: string;
  /** URLs tried: 1, more with `failover` after refused connections, 0 when dropped. */
  attempts: number;
}

export interface SecondStats {
  /** Seconds since the start, by when the requests were due. */
  second: number;
  requests: number;
  succeeded: number;
  failed: number;
  dropped: number;
  successRate: number;
  p50Ms: number;
  p99Ms: number;
}

export interface UrlStats {
  url: string;
  /** Requests that ended at this URL (their own, round-robin, or the next one after a failover). */
  requests: number;
  succeeded: number;
  failed: number;
  /** Connections this URL refused (with `failover`, those requests went on to the next URL). */
  refused: number;
}

export interface LoadProgress {
  elapsedMs: number;
  /** Due so far (sent + dropped). */
  requests: number;
  sent: number;
  dropped: number;
  late: number;
  inFlight: number;
  succeeded: number;
  failed: number;
  /** Answers that arrived since the previous progress report. */
  window: {
    completed: number;
    succeeded: number;
    perSecond: number;
    p50Ms: number;
    p99Ms: number;
    statuses: Record<string, number>;
  };
}

export interface LoadReport {
  target: string;
  urls: string[];
  ratePerSecond: number;
  durationMs: number;
  concurrency: number;
  timeoutMs: number;
  seed: number;
  /** ISO 8601. */
  startedAt: string;
  /** The same, epoch milliseconds: outcomes' timestamps and `perSecond` count from here. */
  startedAtMs: number;
  /** From the start until the last outcome. */
  elapsedMs: number;
  /** Stopped (signal or `stop()`) before every planned request was due. */
  stoppedEarly: boolean;
  /** `ratePerSecond × durationMs`. */
  planned: number;
  /** Due: sent + dropped. */
  requests: number;
  sent: number;
  dropped: number;
  succeeded: number;
  /** requests - succeeded: HTTP errors, timeouts, connection errors and drops. */
  failed: number;
  /** succeeded / requests (0 when nothing was due). */
  successRate: number;
  late: number;
  maxSendLagMs: number;
  /** Requests sent on to another URL after a refused connection (`failover`). */
  failovers: number;
  /** By HTTP status, plus `timeout`, `error` and `dropped`. */
  statuses: Record<string, number>;
  /** Connection-level errors by reason. */
  errors: Record<string, number>;
  /** Requests completed (answered, timed out or failed) per second over the run. */
  throughputPerSecond: number;
  /** Sends per second actually achieved (between the first and the last send). */
  sendRatePerSecond: number;
  latency: LatencySummary;
  perSecond: SecondStats[];
  perUrl: UrlStats[];
  outcomes?: RequestOutcome[];
}

export interface LoadRun {
  /** Resolves when every due request has its outcome. */
  readonly finished: Promise<LoadReport>;
  /** Stops sending (idempotent); `finished` resolves once the requests in flight are done. */
  stop(): void;
  /** The figures so far. */
  progress(): LoadProgress;
}

// ---------------------------------------------------------------------------------------------------------
// Parsing (shared with the CLI)

function invalid(message: string, field: string): AetherError {
  return new AetherError("invalid_flag", message, { field });
}

/** `"200/s"`, `"6000/m"`, `"200"` (per second) → requests per second. */
export function parseRate(text: string, label = "rate"): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|sec|second|m|min|minute))?\s*$/.exec(text);
  if (!m) throw invalid(`${label} "${text}" is not a rate like 200/s, 6000/m or 200`, label);
  const perSecond = Number(m[1]) / (m[2]?.startsWith("m") ? 60 : 1);
  if (perSecond <= 0 || perSecond > MAX_RATE_PER_SECOND) {
    throw invalid(`${label} "${text}" must be above 0 and at most ${MAX_RATE_PER_SECOND}/s`, label);
  }
  return perSecond;
}

/** `"30s"`, `"500ms"`, `"5m"`, `"1h"`, `"30"` (seconds) → milliseconds. */
export function parseDuration(text: string, label = "duration"): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw invalid(`${label} "${text}" is not a duration like 30s, 500ms, 5m or 1h`, label);
  const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  const ms = Number(m[1]) * unitMs;
  if (ms <= 0 || ms > MAX_DURATION_MS) {
    throw invalid(`${label} "${text}" must be above 0 and at most 24h`, label);
  }
  return ms;
}

/** `"POST /api/v1/orders"` → method and path. */
export function parseTarget(text: string, label = "target"): { method: string; path: string } {
  const m = /^\s*([A-Za-z]+)\s+(\S+)\s*$/.exec(text);
  const method = m?.[1].toUpperCase();
  if (!m || !HTTP_METHODS.includes(method as typeof HTTP_METHODS[number])) {
    throw invalid(
      `${label} "${text}" is not "METHOD /path" with METHOD one of ${HTTP_METHODS.join(", ")}`,
      label,
    );
  }
  if (!m[2].startsWith("/")) throw invalid(`${label} "${text}": the path must start with "/"`, label);
  return { method: method!, path: m[2] };
}

/** `"http://127.0.0.1:8071,127.0.0.1:8072"` → normalised base URLs (http:// is assumed when missing). */
export function parseUrls(text: string | readonly string[], label = "url"): string[] {
  const items = (typeof text === "string" ? text.split(",") : [...text]).map((s) => s.trim());
  if (items.length === 0 || items.some((s) => s === "")) {
    throw invalid(`${label} needs one or more base URLs separated by commas, none of them empty`, label);
  }
  const urls = items.map((item) => {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(item) ? item : `http://${item}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw invalid(`${label} "${item}" is not a URL like http://127.0.0.1:8071`, label);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw invalid(`${label} "${item}" must be http:// or https://`, label);
    }
    if (url.search || url.hash || url.username || url.password) {
      throw invalid(`${label} "${item}" must be a base URL without query, fragment or credentials`, label);
    }
    return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
  });
  const twice = urls.find((url, i) => urls.indexOf(url) !== i);
  if (twice) throw invalid(`${label} lists ${twice} twice`, label);
  return urls;
}

// ---------------------------------------------------------------------------------------------------------
// Running

interface Plan {
  method: string;
  path: Template;
  body: Template | undefined;
  headers: Record<string, string>;
  urls: string[];
  intervalMs: number;
  planned: number;
  concurrency: number;
  timeoutMs: number;
  lateAfterMs: number;
  seed: number;
  failover: boolean;
}

function positiveInteger(value: number, label: string, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw invalid(`${label} must be an integer from 1 to ${max}, got ${value}`, label);
  }
  return value;
}

/** Checks the options as a whole; every problem names the option. */
function plan(options: LoadOptions): Plan {
  const { method, path } = parseTarget(options.target);
  if (!(options.ratePerSecond > 0 && options.ratePerSecond <= MAX_RATE_PER_SECOND)) {
    throw invalid(`ratePerSecond must be above 0 and at most ${MAX_RATE_PER_SECOND}`, "ratePerSecond");
  }
  if (!(options.durationMs > 0 && options.durationMs <= MAX_DURATION_MS)) {
    throw invalid(`durationMs must be above 0 and at most ${MAX_DURATION_MS}`, "durationMs");
  }
  const planned = Math.round((options.ratePerSecond * options.durationMs) / 1000);
  if (planned < 1) {
    throw invalid(
      `a rate of ${options.ratePerSecond}/s for ${options.durationMs} ms gives no request at all`,
      "durationMs",
    );
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  const bodyLabel = options.bodyLabel ?? "body";
  const body = options.body === undefined ? undefined : compileTemplate(options.body, bodyLabel);
  if (body) {
    if (method === "GET" || method === "HEAD") {
      throw invalid(`a ${method} request cannot have a body`, "body");
    }
    headers["content-type"] ??= "application/json";
    if (headers["content-type"].includes("json")) {
      // Expand a separate copy once, so a template that cannot produce JSON fails before the load starts.
      const sample = compileTemplate(options.body!, bodyLabel).expand(new Rng(options.seed ?? 0));
      try {
        JSON.parse(sample);
      } catch (e) {
        throw invalid(
          `${bodyLabel} does not expand to JSON (${(e as Error).message}); the first expansion was: ` +
            sample.slice(0, 300),
          "body",
        );
      }
    }
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0 && timeoutMs <= 600_000)) {
    throw invalid(`timeoutMs must be above 0 and at most 600000, got ${timeoutMs}`, "timeoutMs");
  }
  return {
    method,
    path: compileTemplate(path, "target path"),
    body,
    headers,
    urls: parseUrls(options.urls),
    intervalMs: 1000 / options.ratePerSecond,
    planned,
    concurrency: positiveInteger(options.concurrency ?? DEFAULT_CONCURRENCY, "concurrency", 100_000),
    timeoutMs,
    lateAfterMs: options.lateAfterMs ?? DEFAULT_LATE_AFTER_MS,
    seed: options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0],
    failover: options.failover ?? false,
  };
}

/** A short reason for a request that got no HTTP answer: `Connection refused`, not a stack of wrappers. */
export function describeFetchError(e: unknown): string {
  // Deno's fetch throws "fetch failed" with the reason in a chain of causes.
  const messages: string[] = [];
  for (let err = e, depth = 0; err !== undefined && err !== null && depth < 5; depth++) {
    messages.push((err as Error)?.message ?? String(err));
    err = (err as Error)?.cause;
  }
  const message = messages.join(": ");
  const os = /([A-Za-z][A-Za-z ]*[a-z]) \(os error \d+\)/.exec(message);
  if (os) return os[1];
  if (/connection closed before message completed/i.test(message)) {
    return "connection closed before the answer";
  }
  if (/connection reset/i.test(message)) return "connection reset";
  return message.replace(/\s+/g, " ").slice(0, 160);
}

class Bucket {
  requests = 0;
  succeeded = 0;
  dropped = 0;
  latencies: number[] = [];
}

/** Starts a load; see the module comment. Throws AetherError("invalid_flag") for bad options. */
export function startLoad(options: LoadOptions): LoadRun {
  const p = plan(options);
  const clock = options.clock ?? systemClock;
  const rng = new Rng(p.seed);
  const keep = options.recordOutcomes === true;
  const outcomes: RequestOutcome[] = [];
  const statuses: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const samples = new Samples();
  const buckets: Bucket[] = [];
  const perUrl: UrlStats[] = p.urls.map((url) => ({ url, requests: 0, succeeded: 0, failed: 0, refused: 0 }));
  const urlStats = new Map(perUrl.map((u) => [u.url, u]));
  const t0 = clock.now();

  let next = 0;
  let sent = 0;
  let dropped = 0;
  let failovers = 0;
  let succeeded = 0;
  let late = 0;
  let maxSendLagMs = 0;
  let inFlight = 0;
  let firstSentAt = 0;
  let lastSentAt = 0;
  let lastEndedAt = t0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let window = {
    completed: 0,
    succeeded: 0,
    latencies: [] as number[],
    statuses: {} as Record<string, number>,
  };
  let windowStart = t0;
  let finish!: (report: LoadReport) => void;
  const finished = new Promise<LoadReport>((resolve) => finish = resolve);

  const bucketOf = (scheduledAt: number) => {
    const second = Math.max(0, Math.floor((scheduledAt - t0) / 1000));
    while (buckets.length <= second) buckets.push(new Bucket());
    return buckets[second];
  };

  const record = (outcome: RequestOutcome) => {
    const key = outcome.kind === "timeout" || outcome.kind === "error" || outcome.kind === "dropped"
      ? outcome.kind
      : String(outcome.status);
    statuses[key] = (statuses[key] ?? 0) + 1;
    const ok = outcome.kind === "ok";
    const bucket = bucketOf(outcome.scheduledAt);
    bucket.requests++;
    const url = urlStats.get(outcome.url)!;
    url.requests++;
    if (ok) {
      succeeded++;
      bucket.succeeded++;
      url.succeeded++;
    } else url.failed++;
    if (outcome.kind === "dropped") bucket.dropped++;
    if (outcome.kind === "error") errors[outcome.error!] = (errors[outcome.error!] ?? 0) + 1;
    if (outcome.latencyMs !== null) {
      samples.add(outcome.latencyMs);
      bucket.latencies.push(outcome.latencyMs);
    }
    if (outcome.kind !== "dropped") {
      window.completed++;
      if (ok) window.succeeded++;
      if (outcome.latencyMs !== null) window.latencies.push(outcome.latencyMs);
      window.statuses[key] = (window.statuses[key] ?? 0) + 1;
    }
    lastEndedAt = Math.max(lastEndedAt, outcome.endedAt);
    if (keep) outcomes.push(outcome);
    options.onOutcome?.(outcome);
  };

  /**
   * Sends one request, to its own URL and, with `failover`, to the next ones while connections are refused
   * (a refused connection means no node saw the request, so sending it elsewhere cannot duplicate it).
   */
  const attempt = async (
    index: number,
    scheduledAt: number,
    sentAt: number,
    path: string,
    body: string | undefined,
  ): Promise<RequestOutcome> => {
    const signal = AbortSignal.timeout(p.timeoutMs);
    const tries = p.failover ? p.urls.length : 1;
    let outcome: RequestOutcome | undefined;
    for (let attempts = 1; attempts <= tries; attempts++) {
      const position = (index + attempts - 1) % p.urls.length;
      const url = p.urls[position];
      try {
        const response = await fetch(url + path, { method: p.method, headers: p.headers, body, signal });
        // A failed answer's body says why (a problem document); keep its start for the outcome.
        const answer = response.ok ? (await response.arrayBuffer(), undefined) : await response.text();
        const endedAt = clock.now();
        return {
          index,
          url,
          kind: response.ok ? "ok" : "http_error",
          status: response.status,
          scheduledAt,
          sentAt,
          endedAt,
          latencyMs: endedAt - sentAt,
          ...(answer === undefined ? {} : { error: answer.slice(0, ERROR_BODY_CHARS) }),
          attempts,
        };
      } catch (e) {
        const timedOut = (e as Error)?.name === "TimeoutError";
        const error = timedOut ? `no answer within ${p.timeoutMs} ms` : describeFetchError(e);
        outcome = {
          index,
          url,
          kind: timedOut ? "timeout" : "error",
          status: null,
          scheduledAt,
          sentAt,
          endedAt: clock.now(),
          latencyMs: null,
          error,
          attempts,
        };
        if (timedOut || error !== REFUSED) return outcome;
        perUrl[position].refused++;
        if (attempts < tries) failovers++;
      }
    }
    return outcome!;
  };

  const send = async (index: number, scheduledAt: number) => {
    const url = p.urls[index % p.urls.length];
    if (inFlight >= p.concurrency) {
      dropped++;
      const now = clock.now();
      return record({
        index,
        url,
        kind: "dropped",
        status: null,
        scheduledAt,
        sentAt: null,
        endedAt: now,
        latencyMs: null,
        attempts: 0,
      });
    }
    const body = p.body?.expand(rng);
    const path = p.path.expand(rng);
    inFlight++;
    sent++;
    const sentAt = clock.now();
    if (sent === 1) firstSentAt = sentAt;
    lastSentAt = sentAt;
    const lag = sentAt - scheduledAt;
    if (lag > maxSendLagMs) maxSendLagMs = lag;
    if (lag > p.lateAfterMs) late++;
    const outcome = await attempt(index, scheduledAt, sentAt, path, body);
    inFlight--;
    record(outcome);
    if (inFlight === 0 && (stopped || next >= p.planned)) done();
  };

  const tick = () => {
    timer = undefined;
    if (stopped) return;
    const now = clock.now();
    while (next < p.planned && t0 + next * p.intervalMs <= now) {
      const index = next++;
      send(index, t0 + index * p.intervalMs);
    }
    if (next >= p.planned) return stop();
    timer = setTimeout(tick, Math.max(0, t0 + next * p.intervalMs - clock.now()));
  };

  const progress = (): LoadProgress => {
    const now = clock.now();
    const sorted = window.latencies.slice().sort((a, b) => a - b);
    const windowMs = Math.max(1, now - windowStart);
    return {
      elapsedMs: now - t0,
      requests: sent + dropped,
      sent,
      dropped,
      late,
      inFlight,
      succeeded,
      failed: sent + dropped - inFlight - succeeded,
      window: {
        completed: window.completed,
        succeeded: window.succeeded,
        perSecond: (window.completed * 1000) / windowMs,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        statuses: { ...window.statuses },
      },
    };
  };

  const progressTimer = options.onProgress
    ? setInterval(() => {
      const report = progress();
      window = { completed: 0, succeeded: 0, latencies: [], statuses: {} };
      windowStart = clock.now();
      options.onProgress!(report);
    }, options.progressIntervalMs ?? 1000)
    : undefined;

  let reported = false;
  const done = () => {
    if (reported) return;
    reported = true;
    if (progressTimer !== undefined) clearInterval(progressTimer);
    options.signal?.removeEventListener("abort", stop);
    finish(report());
  };

  function stop(): void {
    if (stopped) return;
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    if (inFlight === 0) done();
  }

  const report = (): LoadReport => {
    const requests = sent + dropped;
    const elapsedMs = Math.max(lastEndedAt, lastSentAt) - t0;
    const result: LoadReport = {
      target: `${p.method} ${p.path.source}`,
      urls: [...p.urls],
      ratePerSecond: options.ratePerSecond,
      durationMs: options.durationMs,
      concurrency: p.concurrency,
      timeoutMs: p.timeoutMs,
      seed: p.seed,
      startedAt: new Date(t0).toISOString(),
      startedAtMs: t0,
      elapsedMs,
      stoppedEarly: next < p.planned,
      planned: p.planned,
      requests,
      sent,
      dropped,
      succeeded,
      failed: requests - succeeded,
      successRate: requests === 0 ? 0 : succeeded / requests,
      late,
      maxSendLagMs: Math.round(maxSendLagMs * 1000) / 1000,
      failovers,
      statuses: sortedKeys(statuses),
      errors,
      throughputPerSecond: elapsedMs > 0 ? (sent * 1000) / elapsedMs : 0,
      sendRatePerSecond: sent >= 2 && lastSentAt > firstSentAt
        ? ((sent - 1) * 1000) / (lastSentAt - firstSentAt)
        : 0,
      latency: samples.summary(),
      perSecond: buckets.map((b, second) => {
        const sorted = b.latencies.sort((x, y) => x - y);
        return {
          second,
          requests: b.requests,
          succeeded: b.succeeded,
          failed: b.requests - b.succeeded,
          dropped: b.dropped,
          successRate: b.requests === 0 ? 0 : b.succeeded / b.requests,
          p50Ms: percentile(sorted, 50),
          p99Ms: percentile(sorted, 99),
        };
      }),
      perUrl: perUrl.map((u) => ({ ...u })),
    };
    if (keep) result.outcomes = outcomes.sort((a, b) => a.index - b.index);
    return result;
  };

  if (options.signal?.aborted) stop();
  else {
    options.signal?.addEventListener("abort", stop);
    tick();
  }
  return { finished, stop, progress };
}

/** Runs a load to the end (or until `signal` aborts) and returns its report. */
export function runLoad(options: LoadOptions): Promise<LoadReport> {
  return startLoad(options).finished;
}

function sortedKeys(counts: Record<string, number>): Record<string, number> {
  const keys = Object.keys(counts).sort((a, b) => {
    const [na, nb] = [Number(a), Number(b)];
    if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
    return Number.isNaN(na) === Number.isNaN(nb) ? a.localeCompare(b) : Number.isNaN(na) ? 1 : -1;
  });
  return Object.fromEntries(keys.map((k) => [k, counts[k]]));
}

// ---------------------------------------------------------------------------------------------------------
// Output

const ms = (value: number) =>
  `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : Math.round(value)}ms`;
const pct = (rate: number) => `${(rate * 100).toFixed(rate === 1 ? 1 : 2)}%`;
const counts = (c: Record<string, number>) =>
  Object.entries(c).map(([k, v]) => `${k}: ${v}`).join("  ") || "-";

/** One live line: `[  5s] sent 1000  dropped 0  late 0  in-flight 2 | last 1s: 199/s  ok 100.0%  p50 ... */
export function formatProgress(p: LoadProgress): string {
  const w = p.window;
  const okRate = w.completed === 0 ? "-" : pct(w.succeeded / w.completed);
  return `[${String(Math.round(p.elapsedMs / 1000)).padStart(4)}s] sent ${
    String(p.sent).padStart(7)
  }  dropped ` +
    `${p.dropped}  late ${p.late}  in-flight ${p.inFlight} | last ${
      w.perSecond.toFixed(0)
    }/s  ok ${okRate}  ` +
    `p50 ${ms(w.p50Ms)}  p99 ${ms(w.p99Ms)}  ${counts(w.statuses)}`;
}

/** The final summary as text. */
export function formatReport(r: LoadReport): string {
  const l = r.latency;
  const lines = [
    `${r.target} at ${r.ratePerSecond}/s for ${r.durationMs / 1000}s over ${r.urls.length} URL(s)` +
    ` (concurrency ${r.concurrency}, timeout ${r.timeoutMs}ms, seed ${r.seed})${
      r.stoppedEarly ? "  STOPPED EARLY" : ""
    }`,
    `requests    ${r.requests} of ${r.planned} planned: ${r.sent} sent, ${r.dropped} dropped, ${r.late} late ` +
    `(max send lag ${ms(r.maxSendLagMs)})`,
    `success     ${r.succeeded}/${r.requests} = ${r.requests === 0 ? "-" : pct(r.successRate)}`,
    `throughput  ${r.throughputPerSecond.toFixed(1)} completed/s ` +
    `(${r.elapsedMs > 0 ? ((r.succeeded * 1000) / r.elapsedMs).toFixed(1) : "0.0"} ok/s), ` +
    `sent ${r.sendRatePerSecond.toFixed(1)}/s`,
    `latency     p50 ${ms(l.p50Ms)}  p90 ${ms(l.p90Ms)}  p99 ${ms(l.p99Ms)}  max ${ms(l.maxMs)}  ` +
    `(min ${ms(l.minMs)}, mean ${ms(l.meanMs)}, over ${l.count} answers)`,
    `status      ${counts(r.statuses)}`,
  ];
  if (Object.keys(r.errors).length > 0) lines.push(`errors      ${counts(r.errors)}`);
  if (r.failovers > 0) {
    lines.push(`failovers   ${r.failovers} requests went to the next URL after a refused connection`);
  }
  if (r.perUrl.length > 1) {
    const width = Math.max(...r.perUrl.map((u) => u.url.length));
    r.perUrl.forEach((u, i) =>
      lines.push(
        `${i === 0 ? "per URL     " : "            "}${u.url.padEnd(width)}  ${u.requests} requests  ` +
          `${u.requests === 0 ? "-" : pct(u.succeeded / u.requests)} ok` +
          (u.refused > 0 ? `  ${u.refused} connections refused` : ""),
      )
    );
  }
  return lines.join("\n");
}
