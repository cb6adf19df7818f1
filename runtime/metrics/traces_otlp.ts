/**
 * OTLP/HTTP JSON export of a node's spans (`aether node --otlp-endpoint URL`): every span recorded also goes
 * into a bounded queue that is sent in batches to an OpenTelemetry collector (or Jaeger, Tempo, ... anything
 * that takes OTLP/HTTP with JSON bodies), `POST {endpoint}` with `content-type: application/json`.
 *
 * - Batches of at most OTLP_BATCH_SPANS spans, sent when that many are queued or every
 *   OTLP_FLUSH_INTERVAL_MS, one request at a time.
 * - Bounded: at most OTLP_MAX_QUEUED_SPANS spans wait; a span that finds the queue full is dropped and
 *   counted (recording never waits, and never grows memory while the collector is away).
 * - Retries: a network error, a timeout, 429, 502, 503 or 504 is retried with exponential backoff (honouring
 *   Retry-After, at most OTLP_MAX_RETRY_DELAY_MS) up to OTLP_MAX_ATTEMPTS times; then, or on another status
 *   (400: the collector refuses the data, retrying cannot help), the batch is dropped, counted and logged.
 *
 * The JSON follows the OTLP protobuf's JSON mapping: trace and span ids as hex strings, times as decimal
 * strings of nanoseconds, enums as integers (span kind: 1 internal, 2 server, 3 client; status code: 1 ok,
 * 2 error).
 */

import { type Span, type SpanRecord, type SpanSink, toSpan } from "../invoke/mod.ts";

export const OTLP_BATCH_SPANS = 512;
export const OTLP_FLUSH_INTERVAL_MS = 1_000;
/** Spans waiting to be sent at most (about 0.5 KiB each: at most 8 MiB). */
export const OTLP_MAX_QUEUED_SPANS = 16_384;
export const OTLP_MAX_ATTEMPTS = 5;
export const OTLP_FIRST_RETRY_DELAY_MS = 200;
export const OTLP_MAX_RETRY_DELAY_MS = 10_000;
/** One export request may take this long before it counts as failed (and is retried). */
export const OTLP_REQUEST_TIMEOUT_MS = 10_000;
/** A failing collector is logged at most this often. */
const COMPLAINT_INTERVAL_MS = 30_000;

const RETRIED_STATUSES = new Set([429, 502, 503, 504]);

interface WarnLog {
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface OtlpExporterOptions {
  /** The full URL spans are posted to (otlpTracesUrl makes one from what a user typed). */
  url: string;
  /** This node's id: the resource's `service.instance.id`. */
  node: string;
  log: WarnLog;
  batchSpans?: number;
  flushIntervalMs?: number;
  maxQueuedSpans?: number;
  maxAttempts?: number;
  firstRetryDelayMs?: number;
  requestTimeoutMs?: number;
}

export interface OtlpExporterStats {
  url: string;
  queued: number;
  maxQueued: number;
  /** Spans the collector accepted. */
  sent: number;
  /** Spans dropped because the queue was full. */
  droppedQueueFull: number;
  /** Spans of batches given up on (attempts exhausted, or refused by the collector). */
  droppedFailed: number;
  /** Spans the collector itself reported rejecting (partialSuccess). */
  rejectedByCollector: number;
  retries: number;
  lastError?: string;
}

/**
 * `http://host:4318` (a collector's base: `/v1/traces` is added, as OTEL_EXPORTER_OTLP_ENDPOINT does) or a
 * full URL with a path (used as it is). Throws an Error naming what is wrong.
 */
export function otlpTracesUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`"${text}" is not a URL (e.g. http://127.0.0.1:4318)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`"${text}" is not an http:// or https:// URL (OTLP/HTTP)`);
  }
  if (url.username || url.password) throw new Error(`"${text}": credentials in the URL are not supported`);
  if (url.pathname === "/" || url.pathname === "") url.pathname = "/v1/traces";
  return url.toString();
}

/** Sends a node's spans to an OTLP/HTTP collector; `record` is its SpanSink face. */
export class OtlpExporter implements SpanSink {
  readonly #o: Required<Omit<OtlpExporterOptions, "log">> & { log: WarnLog };
  #queue: SpanRecord[] = [];
  #sending: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  #lastComplaintMs = -Infinity;
  readonly #stats = { sent: 0, droppedQueueFull: 0, droppedFailed: 0, rejectedByCollector: 0, retries: 0 };
  #lastError: string | undefined;
  /** Wakes a retry wait early when the exporter stops. */
  #wake: (() => void) | undefined;

  constructor(options: OtlpExporterOptions) {
    this.#o = {
      url: options.url,
      node: options.node,
      log: options.log,
      batchSpans: options.batchSpans ?? OTLP_BATCH_SPANS,
      flushIntervalMs: options.flushIntervalMs ?? OTLP_FLUSH_INTERVAL_MS,
      maxQueuedSpans: options.maxQueuedSpans ?? OTLP_MAX_QUEUED_SPANS,
      maxAttempts: options.maxAttempts ?? OTLP_MAX_ATTEMPTS,
      firstRetryDelayMs: options.firstRetryDelayMs ?? OTLP_FIRST_RETRY_DELAY_MS,
      requestTimeoutMs: options.requestTimeoutMs ?? OTLP_REQUEST_TIMEOUT_MS,
    };
    const timer = setInterval(() => this.#kick(), this.#o.flushIntervalMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  record(span: SpanRecord): void {
    if (this.#stopped) return;
    if (this.#queue.length >= this.#o.maxQueuedSpans) {
      this.#stats.droppedQueueFull++;
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#o.batchSpans && !this.#sending) queueMicrotask(() => this.#kick());
  }

  /** Sends everything queued now (waits for a batch in flight first). */
  async flush(): Promise<void> {
    while (this.#sending) await this.#sending;
    this.#kick();
    while (this.#sending) await this.#sending;
  }

  /** Stops the timer and sends what is queued, giving it at most `waitMs`. */
  async stop(waitMs = 2_000): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    const flushed = this.flush();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([flushed, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
    this.#stopped = true;
    this.#wake?.();
    this.#queue = [];
  }

  get stats(): OtlpExporterStats {
    return {
      url: this.#o.url,
      queued: this.#queue.length,
      maxQueued: this.#o.maxQueuedSpans,
      ...this.#stats,
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
    };
  }

  #kick(): void {
    if (this.#sending || this.#queue.length === 0 || this.#stopped) return;
    this.#sending = this.#drain().finally(() => (this.#sending = undefined));
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 && !this.#stopped) {
      const batch = this.#queue.splice(0, this.#o.batchSpans);
      await this.#sendBatch(batch);
    }
  }

  async #sendBatch(batch: SpanRecord[]): Promise<void> {
    const body = JSON.stringify(otlpTraceRequest(batch.map(toSpan), this.#o.node));
    for (let attempt = 1;; attempt++) {
      const result = await this.#post(body);
      if (result.ok) {
        this.#stats.sent += batch.length - result.rejected;
        this.#stats.rejectedByCollector += result.rejected;
        return;
      }
      this.#lastError = result.error;
      if (!result.retry || attempt >= this.#o.maxAttempts || this.#stopped) {
        this.#stats.droppedFailed += batch.length;
        this.#complain(`dropped ${batch.length} spans after ${attempt} attempt(s): ${result.error}`);
        return;
      }
      this.#stats.retries++;
      const backoffMs = this.#o.firstRetryDelayMs * 2 ** (attempt - 1);
      await this.#sleep(Math.min(OTLP_MAX_RETRY_DELAY_MS, result.retryAfterMs ?? backoffMs));
    }
  }

  async #post(
    body: string,
  ): Promise<
    { ok: true; rejected: number } | { ok: false; retry: boolean; error: string; retryAfterMs?: number }
  > {
    let response: Response;
    try {
      response = await fetch(this.#o.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(this.#o.requestTimeoutMs),
      });
    } catch (e) {
      return { ok: false, retry: true, error: `POST ${this.#o.url}: ${(e as Error).message}` };
    }
    const text = await response.text().catch(() => "");
    if (response.ok) return { ok: true, rejected: rejectedSpans(text) };
    const error = `POST ${this.#o.url}: HTTP ${response.status} ${text.slice(0, 200)}`.trim();
    const retryAfter = Number(response.headers.get("retry-after"));
    return {
      ok: false,
      retry: RETRIED_STATUSES.has(response.status),
      error,
      retryAfterMs: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
    };
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #complain(message: string): void {
    const now = Date.now();
    if (now - this.#lastComplaintMs < COMPLAINT_INTERVAL_MS) return;
    this.#lastComplaintMs = now;
    this.#o.log.warn("OTLP span export failed", { url: this.#o.url, error: message });
  }
}

/** `partialSuccess.rejectedSpans` of a collector's answer (0 when absent or unreadable). */
function rejectedSpans(text: string): number {
  if (!text) return 0;
  try {
    const rejected = Number(JSON.parse(text)?.partialSuccess?.rejectedSpans ?? 0);
    return Number.isFinite(rejected) && rejected > 0 ? rejected : 0;
  } catch {
    return 0;
  }
}

// ------------------------------------------------------------------------------------------ the JSON

/** OTLP SpanKind: the router and the served side are servers, an attempt a client, a call internal. */
const OTLP_KIND: Record<Span["kind"], number> = { http: 2, serve: 2, attempt: 3, call: 1 };
const STATUS_OK = 1;
const STATUS_ERROR = 2;

type AnyValue = { stringValue: string } | { intValue: string };
interface KeyValue {
  key: string;
  value: AnyValue;
}

/** An ExportTraceServiceRequest of one node's spans. */
export function otlpTraceRequest(spans: readonly Span[], node: string) {
  return {
    resourceSpans: [{
      resource: {
        attributes: [str("service.name", "aether"), str("service.instance.id", node)],
      },
      scopeSpans: [{
        scope: { name: "aether.runtime" },
        spans: spans.map(otlpSpan),
      }],
    }],
  };
}

function otlpSpan(span: Span) {
  const attributes: KeyValue[] = [
    str("aether.request_id", span.requestId),
    str("aether.span", span.kind),
    str("aether.node", span.node),
    str("aether.outcome", span.outcome),
  ];
  if (span.slice !== undefined) attributes.push(str("aether.slice", span.slice));
  if (span.method !== undefined) attributes.push(str("aether.method", span.method));
  if (span.instance !== undefined) attributes.push(str("aether.instance", span.instance));
  if (span.peer !== undefined) attributes.push(str("aether.peer", span.peer));
  if (span.attempt !== undefined) attributes.push(int("aether.attempt", span.attempt));
  if (span.status !== undefined) {
    attributes.push(int(span.kind === "http" ? "http.response.status_code" : "aether.status", span.status));
  }
  const out: Record<string, unknown> = {
    traceId: span.traceId,
    spanId: span.spanId,
    name: span.name,
    kind: OTLP_KIND[span.kind] ?? 1,
    startTimeUnixNano: unixNanos(span.startMs),
    endTimeUnixNano: unixNanos(span.startMs + span.durationMs),
    attributes,
    status: span.outcome === "ok" ? { code: STATUS_OK } : { code: STATUS_ERROR, message: span.outcome },
  };
  if (span.parentSpanId !== undefined) out.parentSpanId = span.parentSpanId;
  return out;
}

function str(key: string, value: string): KeyValue {
  return { key, value: { stringValue: value } };
}

function int(key: string, value: number): KeyValue {
  return { key, value: { intValue: String(Math.trunc(value)) } };
}

/** Epoch milliseconds with a fraction as a decimal string of nanoseconds (exact past 2^53). */
export function unixNanos(ms: number): string {
  const whole = Math.floor(ms);
  const nanos = Math.round((ms - whole) * 1e6);
  return (BigInt(whole) * 1_000_000n + BigInt(nanos)).toString();
}
