/**
 * The load generator: an open-loop HTTP load at a fixed rate against one or more nodes.
 *
 * Open loop means request `i` is due at `start + i / rate` (or, with a `shape`, when the shape's cumulative
 * count of requests reaches `i`: see `shape.ts`) whatever happened to the requests before it, so a
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
 * Bodies and paths are templates (`_template.ts`) expanded per request. A request succeeds when it gets a
 * 2xx or 3xx answer (redirects are not followed) within `timeoutMs`; latency is measured from the send to
 * the end of the response body, over every request that got an HTTP answer (timeouts and connection errors
 * are counted, not timed).
 *
 * `startLoad` returns a handle for tests that act while the load runs (kill a node, then read per-second
 * success rates and every request's outcome with its timestamps); `runLoad` waits for the report.
 */

import { type Clock, Rng, systemClock } from "../core/mod.ts";
import { type LatencySummary, percentile, Samples } from "./_stats.ts";
import { compileTemplate, type Template } from "./_template.ts";
import { invalid, MAX_DURATION_MS, MAX_RATE_PER_SECOND, parseTarget, parseUrls } from "./parse.ts";
import { describeSegment, type LoadShape } from "./shape.ts";

export const DEFAULT_CONCURRENCY = 1_000;
export const DEFAULT_TIMEOUT_MS = 5_000;
export const DEFAULT_LATE_AFTER_MS = 10;
/** What `describeFetchError` says when nothing listens on the port. */
const REFUSED = "Connection refused";
/** How much of a failed answer's body an outcome keeps. */
const ERROR_BODY_CHARS = 400;

export interface LoadOptions {
  /** `"POST /api/v1/orders"`; the path may hold template patterns. */
  target: string;
  /** Base URLs (scheme, host, port, optional base path), used round-robin. */
  urls: readonly string[];
  /** A constant rate; with `durationMs`. Either these two or `shape`. */
  ratePerSecond?: number;
  durationMs?: number;
  /** A rate that changes over time (`parseShape`), instead of `ratePerSecond` and `durationMs`. */
  shape?: LoadShape;
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

/**
 * ok: a 2xx or 3xx; http_error: another status; timeout; error: no HTTP answer (refused, reset); dropped: not
 * sent.
 */
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
  /** Why it failed: the connection error, or the start of a failed answer's body (a problem document). */
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

/**
 * The requests due within one segment of a shape. `firstLatencyMs` is the answer time of the segment's first
 * request: after an `idle` segment that let a slice scale to zero, its cold start as a client sees it.
 */
export interface SegmentStats {
  /** The segment in the grammar's words. */
  segment: string;
  startMs: number;
  durationMs: number;
  requests: number;
  succeeded: number;
  successRate: number;
  firstLatencyMs: number | null;
  latency: LatencySummary;
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
  /** The rate the schedule asks for now (requests a second; a shape's current rate). */
  targetPerSecond: number;
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
  /** The constant rate, or a shape's mean rate (planned over its duration). */
  ratePerSecond: number;
  durationMs: number;
  /** The shape played, in the grammar's words (absent for a constant rate). */
  shape?: string;
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
  /** `ratePerSecond × durationMs`, or the integral of the shape's rate rounded up. */
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
  /** By segment of the shape (absent for a constant rate). */
  perSegment?: SegmentStats[];
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
// Planning: the options checked as a whole, before anything is sent

interface Plan {
  method: string;
  path: Template;
  body: Template | undefined;
  headers: Record<string, string>;
  urls: string[];
  schedule: Schedule;
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

/** When each request is due: a constant rate or a shape. */
export interface Schedule {
  /** Requests in all. */
  planned: number;
  durationMs: number;
  /** Request `index`'s due time in ms after the start (non-decreasing in `index`). */
  dueAtMs(index: number): number;
  /** The target rate `tMs` after the start. */
  rateAt(tMs: number): number;
  /** The shape in words, for a shaped schedule. */
  shape?: string;
  /** A shape's segments in words with their times, and which one plays `tMs` after the start. */
  segments?: { segment: string; startMs: number; durationMs: number }[];
  segmentIndexAt?(tMs: number): number;
}

/** The schedule the options ask for; every problem names the option. */
function scheduleOf(options: LoadOptions): Schedule {
  const { ratePerSecond, durationMs, shape } = options;
  if (shape !== undefined) {
    if (ratePerSecond !== undefined || durationMs !== undefined) {
      throw invalid("a shape sets the rate and the duration: give shape alone", "shape");
    }
    return {
      planned: shape.planned,
      durationMs: shape.durationMs,
      dueAtMs: (index) => shape.dueAtMs(index),
      rateAt: (tMs) => shape.rateAt(tMs),
      shape: shape.describe(),
      segments: shape.segments.map((s) => ({
        segment: describeSegment(s),
        startMs: s.startMs,
        durationMs: s.durationMs,
      })),
      segmentIndexAt: (tMs) => shape.segmentIndexAt(tMs),
    };
  }
  if (!(ratePerSecond !== undefined && ratePerSecond > 0 && ratePerSecond <= MAX_RATE_PER_SECOND)) {
    throw invalid(`ratePerSecond must be above 0 and at most ${MAX_RATE_PER_SECOND}`, "ratePerSecond");
  }
  if (!(durationMs !== undefined && durationMs > 0 && durationMs <= MAX_DURATION_MS)) {
    throw invalid(`durationMs must be above 0 and at most ${MAX_DURATION_MS}`, "durationMs");
  }
  const planned = Math.round((ratePerSecond * durationMs) / 1000);
  if (planned < 1) {
    throw invalid(`a rate of ${ratePerSecond}/s for ${durationMs} ms gives no request at all`, "durationMs");
  }
  const intervalMs = 1000 / ratePerSecond;
  return {
    planned,
    durationMs,
    dueAtMs: (index) => index * intervalMs,
    rateAt: (tMs) => (tMs >= 0 && tMs < durationMs ? ratePerSecond : 0),
  };
}

/** Checks the options as a whole; every problem names the option. */
function plan(options: LoadOptions): Plan {
  const { method, path } = parseTarget(options.target);
  const schedule = scheduleOf(options);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  const body = plannedBody(options, method, headers);
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
    schedule,
    concurrency: positiveInteger(options.concurrency ?? DEFAULT_CONCURRENCY, "concurrency", 100_000),
    timeoutMs,
    lateAfterMs: options.lateAfterMs ?? DEFAULT_LATE_AFTER_MS,
    seed: options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0],
    failover: options.failover ?? false,
  };
}

/** The body template; sets the JSON content type when none is given (into `headers`). */
function plannedBody(options: LoadOptions, method: string, headers: Record<string, string>) {
  if (options.body === undefined) return undefined;
  const bodyLabel = options.bodyLabel ?? "body";
  const body = compileTemplate(options.body, bodyLabel);
  if (method === "GET" || method === "HEAD") {
    throw invalid(`a ${method} request cannot have a body`, "body");
  }
  headers["content-type"] ??= "application/json";
  if (!headers["content-type"].includes("json")) return body;
  // Expand a separate copy once, so a template that cannot produce JSON fails before the load starts.
  const sample = compileTemplate(options.body, bodyLabel).expand(new Rng(options.seed ?? 0));
  try {
    JSON.parse(sample);
  } catch (e) {
    throw invalid(
      `${bodyLabel} does not expand to JSON (${(e as Error).message}); the first expansion was: ` +
        sample.slice(0, 300),
      "body",
    );
  }
  return body;
}

// ---------------------------------------------------------------------------------------------------------
// One request

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

/** One request as it leaves: its place in the schedule and its expanded path and body. */
interface Sending {
  index: number;
  scheduledAt: number;
  sentAt: number;
  path: string;
  body: string | undefined;
}

/** Where a request's refused connections are counted. */
interface RefusalCounter {
  refused(position: number, willFailOver: boolean): void;
}

/**
 * Sends one request, to its own URL and, with `failover`, to the next ones while connections are refused
 * (a refused connection means no node saw the request, so sending it elsewhere cannot duplicate it).
 */
async function attempt(
  p: Plan,
  clock: Clock,
  sending: Sending,
  refusals: RefusalCounter,
): Promise<RequestOutcome> {
  const signal = AbortSignal.timeout(p.timeoutMs);
  const tries = p.failover ? p.urls.length : 1;
  let outcome: RequestOutcome | undefined;
  for (let attempts = 1; attempts <= tries; attempts++) {
    const position = (sending.index + attempts - 1) % p.urls.length;
    const url = p.urls[position];
    try {
      const response = await fetch(url + sending.path, {
        method: p.method,
        headers: p.headers,
        body: sending.body,
        signal,
        // A redirect is the application's answer (a URL shortener's resolve): following it would load the
        // page it points to, often another host, and time the wrong thing.
        redirect: "manual",
      });
      // A failed answer's body says why (a problem document); keep its start for the outcome.
      const answer = succeeded(response) ? (await response.arrayBuffer(), undefined) : await response.text();
      return answered(sending, url, attempts, response, answer, clock.now());
    } catch (e) {
      outcome = unanswered(p, sending, url, attempts, e, clock.now());
      if (outcome.kind === "timeout" || outcome.error !== REFUSED) return outcome;
      refusals.refused(position, attempts < tries);
    }
  }
  return outcome!;
}

/** 2xx and 3xx answers succeed: with redirects not followed, a 3xx is what the application meant to say. */
function succeeded(response: Response): boolean {
  return response.status >= 200 && response.status < 400;
}

function answered(
  sending: Sending,
  url: string,
  attempts: number,
  response: Response,
  answer: string | undefined,
  endedAt: number,
): RequestOutcome {
  return {
    index: sending.index,
    url,
    kind: succeeded(response) ? "ok" : "http_error",
    status: response.status,
    scheduledAt: sending.scheduledAt,
    sentAt: sending.sentAt,
    endedAt,
    latencyMs: endedAt - sending.sentAt,
    ...(answer === undefined ? {} : { error: answer.slice(0, ERROR_BODY_CHARS) }),
    attempts,
  };
}

function unanswered(
  p: Plan,
  sending: Sending,
  url: string,
  attempts: number,
  e: unknown,
  endedAt: number,
): RequestOutcome {
  const timedOut = (e as Error)?.name === "TimeoutError";
  return {
    index: sending.index,
    url,
    kind: timedOut ? "timeout" : "error",
    status: null,
    scheduledAt: sending.scheduledAt,
    sentAt: sending.sentAt,
    endedAt,
    latencyMs: null,
    error: timedOut ? `no answer within ${p.timeoutMs} ms` : describeFetchError(e),
    attempts,
  };
}

function dropped(index: number, url: string, scheduledAt: number, endedAt: number): RequestOutcome {
  return {
    index,
    url,
    kind: "dropped",
    status: null,
    scheduledAt,
    sentAt: null,
    endedAt,
    latencyMs: null,
    attempts: 0,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Counting the outcomes

/** The outcomes of the requests due in one second of the schedule. */
class Bucket {
  requests = 0;
  succeeded = 0;
  dropped = 0;
  latencies: number[] = [];

  add(outcome: RequestOutcome): void {
    this.requests++;
    if (outcome.kind === "ok") this.succeeded++;
    if (outcome.kind === "dropped") this.dropped++;
    if (outcome.latencyMs !== null) this.latencies.push(outcome.latencyMs);
  }

  stats(second: number): SecondStats {
    const sorted = this.latencies.sort((x, y) => x - y);
    return {
      second,
      requests: this.requests,
      succeeded: this.succeeded,
      failed: this.requests - this.succeeded,
      dropped: this.dropped,
      successRate: this.requests === 0 ? 0 : this.succeeded / this.requests,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
    };
  }
}

/** The answers since the previous progress report. */
interface Window {
  completed: number;
  succeeded: number;
  latencies: number[];
  statuses: Record<string, number>;
}

const emptyWindow = (): Window => ({ completed: 0, succeeded: 0, latencies: [], statuses: {} });

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** An outcome's key in `statuses`: the HTTP status, or `timeout`, `error` or `dropped`. */
function statusKey(outcome: RequestOutcome): string {
  return outcome.kind === "timeout" || outcome.kind === "error" || outcome.kind === "dropped"
    ? outcome.kind
    : String(outcome.status);
}

/** The outcomes of the requests due in one segment of a shape. */
class SegmentTally {
  requests = 0;
  succeeded = 0;
  readonly samples = new Samples();
  #firstIndex = Infinity;
  #firstLatencyMs: number | null = null;

  add(outcome: RequestOutcome): void {
    this.requests++;
    if (outcome.kind === "ok") this.succeeded++;
    if (outcome.latencyMs !== null) this.samples.add(outcome.latencyMs);
    if (outcome.index < this.#firstIndex) {
      this.#firstIndex = outcome.index;
      this.#firstLatencyMs = outcome.latencyMs;
    }
  }

  stats(segment: { segment: string; startMs: number; durationMs: number }): SegmentStats {
    return {
      ...segment,
      requests: this.requests,
      succeeded: this.succeeded,
      successRate: this.requests === 0 ? 0 : this.succeeded / this.requests,
      firstLatencyMs: this.#firstLatencyMs === null ? null : Math.round(this.#firstLatencyMs * 1000) / 1000,
      latency: this.samples.summary(),
    };
  }
}

/** Every count over the outcomes: by status, by second of the schedule, by URL, and since the last report. */
class Tally implements RefusalCounter {
  readonly statuses: Record<string, number> = {};
  readonly errors: Record<string, number> = {};
  readonly samples = new Samples();
  readonly buckets: Bucket[] = [];
  readonly perUrl: UrlStats[];
  readonly outcomes: RequestOutcome[] = [];
  succeeded = 0;
  failovers = 0;
  lastEndedAt: number;
  window = emptyWindow();
  windowStart: number;
  readonly #byUrl: Map<string, UrlStats>;
  readonly #segments: SegmentTally[];

  constructor(
    urls: readonly string[],
    readonly t0: number,
    readonly keepOutcomes: boolean,
    readonly schedule: Schedule,
  ) {
    this.#segments = (schedule.segments ?? []).map(() => new SegmentTally());
    this.perUrl = urls.map((url) => ({ url, requests: 0, succeeded: 0, failed: 0, refused: 0 }));
    this.#byUrl = new Map(this.perUrl.map((u) => [u.url, u]));
    this.lastEndedAt = t0;
    this.windowStart = t0;
  }

  record(outcome: RequestOutcome): void {
    const key = statusKey(outcome);
    const ok = outcome.kind === "ok";
    increment(this.statuses, key);
    if (ok) this.succeeded++;
    if (outcome.kind === "error") increment(this.errors, outcome.error!);
    if (outcome.latencyMs !== null) this.samples.add(outcome.latencyMs);
    this.#bucketOf(outcome.scheduledAt).add(outcome);
    const segment = this.schedule.segmentIndexAt?.(outcome.scheduledAt - this.t0) ?? -1;
    if (segment >= 0) this.#segments[segment].add(outcome);
    const url = this.#byUrl.get(outcome.url)!;
    url.requests++;
    if (ok) url.succeeded++;
    else url.failed++;
    if (outcome.kind !== "dropped") this.#addToWindow(outcome, key);
    this.lastEndedAt = Math.max(this.lastEndedAt, outcome.endedAt);
    if (this.keepOutcomes) this.outcomes.push(outcome);
  }

  refused(position: number, willFailOver: boolean): void {
    this.perUrl[position].refused++;
    if (willFailOver) this.failovers++;
  }

  /** Starts a new window at `now`. */
  resetWindow(now: number): void {
    this.window = emptyWindow();
    this.windowStart = now;
  }

  perSegment(): SegmentStats[] | undefined {
    const segments = this.schedule.segments;
    return segments && this.#segments.map((tally, i) => tally.stats(segments[i]));
  }

  perSecond(): SecondStats[] {
    return this.buckets.map((bucket, second) => bucket.stats(second));
  }

  #bucketOf(scheduledAt: number): Bucket {
    const second = Math.max(0, Math.floor((scheduledAt - this.t0) / 1000));
    while (this.buckets.length <= second) this.buckets.push(new Bucket());
    return this.buckets[second];
  }

  #addToWindow(outcome: RequestOutcome, key: string): void {
    this.window.completed++;
    if (outcome.kind === "ok") this.window.succeeded++;
    if (outcome.latencyMs !== null) this.window.latencies.push(outcome.latencyMs);
    increment(this.window.statuses, key);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The schedule

/**
 * Sends request `i` when it is due (`t0 + schedule.dueAtMs(i)`), drops it when `concurrency` requests are already
 * waiting, and reports once sending has stopped and nothing is in flight.
 */
class LoadRunner {
  readonly finished: Promise<LoadReport>;
  readonly #p: Plan;
  readonly #options: LoadOptions;
  readonly #clock: Clock;
  readonly #rng: Rng;
  readonly #t0: number;
  readonly #tally: Tally;
  #finish!: (report: LoadReport) => void;
  #next = 0;
  #sent = 0;
  #dropped = 0;
  #late = 0;
  #maxSendLagMs = 0;
  #inFlight = 0;
  #firstSentAt = 0;
  #lastSentAt = 0;
  #stopped = false;
  #reported = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #progressTimer: ReturnType<typeof setInterval> | undefined;

  constructor(p: Plan, options: LoadOptions) {
    this.#p = p;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#rng = new Rng(p.seed);
    this.#t0 = this.#clock.now();
    this.#tally = new Tally(p.urls, this.#t0, options.recordOutcomes === true, p.schedule);
    this.finished = new Promise<LoadReport>((resolve) => this.#finish = resolve);
  }

  start(): void {
    if (this.#options.onProgress) {
      this.#progressTimer = setInterval(
        () => this.#reportProgress(),
        this.#options.progressIntervalMs ?? 1000,
      );
    }
    if (this.#options.signal?.aborted) return this.stop();
    this.#options.signal?.addEventListener("abort", this.stop);
    this.#tick();
  }

  /** Stops sending (idempotent); the report follows once the requests in flight are done. */
  readonly stop = (): void => {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#inFlight === 0) this.#done();
  };

  readonly progress = (): LoadProgress => {
    const now = this.#clock.now();
    const window = this.#tally.window;
    const sorted = window.latencies.slice().sort((a, b) => a - b);
    const windowMs = Math.max(1, now - this.#tally.windowStart);
    return {
      elapsedMs: now - this.#t0,
      targetPerSecond: this.#p.schedule.rateAt(now - this.#t0),
      requests: this.#sent + this.#dropped,
      sent: this.#sent,
      dropped: this.#dropped,
      late: this.#late,
      inFlight: this.#inFlight,
      succeeded: this.#tally.succeeded,
      failed: this.#sent + this.#dropped - this.#inFlight - this.#tally.succeeded,
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

  /** Sends every request that is due, then sleeps until the next one is. */
  #tick(): void {
    this.#timer = undefined;
    if (this.#stopped) return;
    const { schedule } = this.#p;
    const now = this.#clock.now();
    let dueAt = this.#t0 + schedule.dueAtMs(this.#next);
    while (this.#next < schedule.planned && dueAt <= now) {
      this.#send(this.#next++, dueAt);
      dueAt = this.#t0 + schedule.dueAtMs(this.#next);
    }
    if (this.#next >= schedule.planned) return this.stop();
    const dueInMs = dueAt - this.#clock.now();
    this.#timer = setTimeout(() => this.#tick(), Math.max(0, dueInMs));
  }

  async #send(index: number, scheduledAt: number): Promise<void> {
    if (this.#inFlight >= this.#p.concurrency) {
      this.#dropped++;
      const url = this.#p.urls[index % this.#p.urls.length];
      return this.#record(dropped(index, url, scheduledAt, this.#clock.now()));
    }
    const body = this.#p.body?.expand(this.#rng);
    const path = this.#p.path.expand(this.#rng);
    this.#inFlight++;
    const sentAt = this.#markSent(scheduledAt);
    const outcome = await attempt(
      this.#p,
      this.#clock,
      { index, scheduledAt, sentAt, path, body },
      this.#tally,
    );
    this.#inFlight--;
    this.#record(outcome);
    if (this.#inFlight === 0 && (this.#stopped || this.#next >= this.#p.schedule.planned)) this.#done();
  }

  /** Counts a send and how far behind its schedule it left; returns when it left. */
  #markSent(scheduledAt: number): number {
    this.#sent++;
    const sentAt = this.#clock.now();
    if (this.#sent === 1) this.#firstSentAt = sentAt;
    this.#lastSentAt = sentAt;
    const lag = sentAt - scheduledAt;
    if (lag > this.#maxSendLagMs) this.#maxSendLagMs = lag;
    if (lag > this.#p.lateAfterMs) this.#late++;
    return sentAt;
  }

  #record(outcome: RequestOutcome): void {
    this.#tally.record(outcome);
    this.#options.onOutcome?.(outcome);
  }

  #reportProgress(): void {
    const report = this.progress();
    this.#tally.resetWindow(this.#clock.now());
    this.#options.onProgress!(report);
  }

  #done(): void {
    if (this.#reported) return;
    this.#reported = true;
    if (this.#progressTimer !== undefined) clearInterval(this.#progressTimer);
    this.#options.signal?.removeEventListener("abort", this.stop);
    this.#finish(this.#report());
  }

  #report(): LoadReport {
    const p = this.#p;
    const tally = this.#tally;
    const sent = this.#sent;
    const requests = sent + this.#dropped;
    const elapsedMs = Math.max(tally.lastEndedAt, this.#lastSentAt) - this.#t0;
    const sendingMs = this.#lastSentAt - this.#firstSentAt;
    const result: LoadReport = {
      target: `${p.method} ${p.path.source}`,
      urls: [...p.urls],
      ratePerSecond: this.#options.ratePerSecond ?? (p.schedule.planned * 1000) / p.schedule.durationMs,
      durationMs: p.schedule.durationMs,
      ...(p.schedule.shape === undefined ? {} : { shape: p.schedule.shape }),
      concurrency: p.concurrency,
      timeoutMs: p.timeoutMs,
      seed: p.seed,
      startedAt: new Date(this.#t0).toISOString(),
      startedAtMs: this.#t0,
      elapsedMs,
      stoppedEarly: this.#next < p.schedule.planned,
      planned: p.schedule.planned,
      requests,
      sent,
      dropped: this.#dropped,
      succeeded: tally.succeeded,
      failed: requests - tally.succeeded,
      successRate: requests === 0 ? 0 : tally.succeeded / requests,
      late: this.#late,
      maxSendLagMs: Math.round(this.#maxSendLagMs * 1000) / 1000,
      failovers: tally.failovers,
      statuses: sortedKeys(tally.statuses),
      errors: tally.errors,
      throughputPerSecond: elapsedMs > 0 ? (sent * 1000) / elapsedMs : 0,
      sendRatePerSecond: sent >= 2 && sendingMs > 0 ? ((sent - 1) * 1000) / sendingMs : 0,
      latency: tally.samples.summary(),
      perSecond: tally.perSecond(),
      perUrl: tally.perUrl.map((u) => ({ ...u })),
    };
    const perSegment = tally.perSegment();
    if (perSegment) result.perSegment = perSegment;
    if (tally.keepOutcomes) result.outcomes = tally.outcomes.sort((a, b) => a.index - b.index);
    return result;
  }
}

/** Starts a load; see the module comment. Throws AetherError("invalid_flag") for bad options. */
export function startLoad(options: LoadOptions): LoadRun {
  const runner = new LoadRunner(plan(options), options);
  runner.start();
  return { finished: runner.finished, stop: runner.stop, progress: runner.progress };
}

/** Runs a load to the end (or until `signal` aborts) and returns its report. */
export function runLoad(options: LoadOptions): Promise<LoadReport> {
  return startLoad(options).finished;
}

/** Status counts with the numeric statuses first, in order, then the named ones. */
function sortedKeys(counts: Record<string, number>): Record<string, number> {
  const keys = Object.keys(counts).sort((a, b) => {
    const [na, nb] = [Number(a), Number(b)];
    if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
    return Number.isNaN(na) === Number.isNaN(nb) ? a.localeCompare(b) : Number.isNaN(na) ? 1 : -1;
  });
  return Object.fromEntries(keys.map((k) => [k, counts[k]]));
}
