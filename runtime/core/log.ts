/**
 * Structured logging to standard error, one line per record, in one of two formats:
 * - text: `time level [node] message key=value ...` (for people);
 * - json: one JSON object per line, `{"time","level","node","msg", ...fields}` (for log shippers).
 * Standard output is reserved for machine-readable lines (the node's ready line).
 *
 * A logger may also hand every record it writes to a `LogRing`: the node's bounded memory of its recent
 * records, which the management API serves (GET /api/v1/logs).
 */

import { randomHex } from "./ids.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";

/** In rank order, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && Object.hasOwn(LEVEL_RANK, value);
}

/** Whether a record of `level` passes a minimum level of `min`. */
export function levelAtLeast(level: LogLevel, min: LogLevel): boolean {
  return LEVEL_RANK[level] >= LEVEL_RANK[min];
}

export type LogFormat = "text" | "json";
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

export type LogFields = Record<string, unknown>;

/** One log record as written, with fields that survive JSON (errors become their message). */
export interface LogRecord {
  /** Epoch milliseconds. */
  time: number;
  level: LogLevel;
  /** The node (the logger's name) that wrote it; absent for unnamed loggers. */
  node?: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** A record per call at four levels: all a slice's `ctx.log` offers (the SDK's `Logger`). */
export interface LogWriter {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export interface Logger extends LogWriter {
  /** A logger whose records all carry `fields` (for example a request id). */
  with(fields: LogFields): Logger;
  /** Whether records of `level` are written: hot paths skip building fields nobody will see. */
  enabled(level: LogLevel): boolean;
  /** Changes the least level written, for this logger and every one made from it by `with` (live config). */
  setLevel?(level: LogLevel): void;
}

export type LogSink = (line: string) => void;

const encoder = new TextEncoder();
export const stderrSink: LogSink = (line) => {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // Standard error closed (parent gone): nothing sensible left to do with a log line.
  }
};

/** A field value as JSON can carry it: errors by their message, bigints as text, the rest as it is. */
function jsonSafe(value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === "bigint") return value.toString();
  return value;
}

/**
 * Characters that must not reach a terminal or a line-oriented log reader raw: C0 controls (newline, carriage
 * return, ESC of ANSI sequences...), DEL, C1 controls and the Unicode line and paragraph separators. A
 * message with a newline would otherwise start a line of its own that looks like the node's.
 */
// deno-lint-ignore no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
// deno-lint-ignore no-control-regex
const HAS_UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
/** What JSON.stringify leaves unescaped of the above. */
const HAS_UNSAFE_JSON = /[\u007f-\u009f\u2028\u2029]/;
// deno-lint-ignore no-control-regex
const NEEDS_QUOTES = /[\s="\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const PLAIN_KEY = /^[\w.:/@-]+$/;
const NAMED_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeChar(c: string): string {
  const code = c.charCodeAt(0);
  return NAMED_ESCAPES[c] ??
    (code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`);
}

/** `text` with every unsafe character written as an escape (`\n`, `\x1b`, `\u2028`): one line, no terminal codes. */
export function escapeLogText(text: string): string {
  return HAS_UNSAFE_TEXT.test(text) ? text.replace(UNSAFE_TEXT, escapeChar) : text;
}

/** JSON text, with the few characters JSON leaves raw escaped too. */
function safeJson(json: string): string {
  return HAS_UNSAFE_JSON.test(json) ? json.replace(UNSAFE_TEXT, escapeChar) : json;
}

function formatValue(value: unknown): string {
  if (typeof value === "string") return NEEDS_QUOTES.test(value) ? safeJson(JSON.stringify(value)) : value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  const json = JSON.stringify(value);
  return json === undefined ? escapeLogText(String(value)) : safeJson(json);
}

function formatKey(key: string): string {
  return PLAIN_KEY.test(key) ? key : safeJson(JSON.stringify(key));
}

/**
 * `2026-01-02T03:04:05.678Z INFO  [n1] message key=value ...`, always one line: control characters in the
 * message, keys and values are escaped, so no record (a slice's included) can forge or colour another line.
 */
export function formatLogText(record: LogRecord): string {
  const prefix = record.node ? ` [${escapeLogText(record.node)}]` : "";
  const tail = Object.entries(record.fields).map(([k, v]) => ` ${formatKey(k)}=${formatValue(v)}`).join("");
  return `${new Date(record.time).toISOString()} ${record.level.toUpperCase().padEnd(5)}${prefix} ${
    escapeLogText(record.msg)
  }${tail}`;
}

/** The keys every JSON line starts with; a field of the same name is written as `field.<name>`. */
const JSON_RESERVED = new Set(["time", "level", "node", "msg"]);

/** `{"time":"2026-...Z","level":"info","node":"n1","msg":"...","key":"value",...}` on one line. */
export function formatLogJson(record: LogRecord): string {
  const line: Record<string, unknown> = { time: new Date(record.time).toISOString(), level: record.level };
  if (record.node !== undefined) line.node = record.node;
  line.msg = record.msg;
  for (const [k, v] of Object.entries(record.fields)) line[JSON_RESERVED.has(k) ? `field.${k}` : k] = v;
  try {
    return JSON.stringify(line);
  } catch {
    // A field JSON cannot hold (a cycle): keep the record, name what was lost.
    return JSON.stringify({ ...line, ...unserializable(record.fields) });
  }
}

function unserializable(fields: Record<string, unknown>): Record<string, unknown> {
  const safe: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    try {
      JSON.stringify(v);
      safe[k] = v;
    } catch {
      safe[k] = `[unserializable ${typeof v}]`;
    }
  }
  return safe;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** The node id written on every line (`[n1]` in text, `"node"` in JSON). */
  name?: string;
  sink?: LogSink;
  format?: LogFormat;
  fields?: LogFields;
  /** Also receives every record written, with the length of its line (the node's LogRing). */
  onRecord?: (record: LogRecord, lineLength: number) => void;
  /** The time of a record; `Date.now` unless a test fixes it. */
  now?: () => number;
  /** Shared by a logger and those made from it by `with`, so `setLevel` changes them all. */
  levelRef?: { level: LogLevel };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const levelRef = options.levelRef ?? { level: options.level ?? "info" };
  const sink = options.sink ?? stderrSink;
  const base = options.fields ?? {};
  const format = options.format === "json" ? formatLogJson : formatLogText;
  const now = options.now ?? Date.now;
  const write = (level: LogLevel, message: string, fields?: LogFields) => {
    if (LEVEL_RANK[level] < LEVEL_RANK[levelRef.level]) return;
    const all: Record<string, unknown> = {};
    for (const [k, v] of Object.entries({ ...base, ...fields })) if (v !== undefined) all[k] = jsonSafe(v);
    const record: LogRecord = { time: now(), level, msg: String(message), fields: all };
    if (options.name !== undefined) record.node = options.name;
    const line = format(record);
    options.onRecord?.(record, line.length);
    sink(line);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    with: (fields) => createLogger({ ...options, levelRef, fields: { ...base, ...fields } }),
    enabled: (level) => LEVEL_RANK[level] >= LEVEL_RANK[levelRef.level],
    setLevel: (level) => {
      if (!isLogLevel(level)) {
        throw new TypeError(`log level ${JSON.stringify(level)} is not ${LOG_LEVELS.join(", ")}`);
      }
      levelRef.level = level;
    },
  };
}

/** A logger that drops everything (for benchmarks and tests that assert on other output). */
export const silentLogger: Logger = createLogger({ level: "error", sink: () => {} });

// ---------------------------------------------------------------------------------------------------------
// The ring of recent records

/** A record in a node's ring, numbered in the order it was written (1, 2, ...; per ring). */
export interface SequencedLogRecord extends LogRecord {
  seq: number;
}

export interface LogRingLimits {
  /** Records kept at most; the oldest is dropped for a new one beyond this. */
  maxRecords: number;
  /** Sum of the records' line lengths kept at most (a few very long records cannot hold much memory). */
  maxBytes: number;
}

/**
 * 10,000 records is about ten minutes of a node at INFO under load (the example shop logs per request at
 * DEBUG), and 8 MiB bounds the memory whatever the records hold.
 */
export const DEFAULT_LOG_RING_LIMITS: LogRingLimits = Object.freeze({
  maxRecords: 10_000,
  maxBytes: 8 * 1024 * 1024,
});

/** Which records a query wants; every given condition must hold. */
export interface LogFilter {
  node?: string;
  /** Slice coordinates: `group:artifact:version`, or `group:artifact` for every version. */
  slice?: string;
  requestId?: string;
  /** The lowest level wanted. */
  level?: LogLevel;
  /** Epoch milliseconds: only records written at or after it. */
  sinceMs?: number;
}

export function matchesLogFilter(record: LogRecord, filter: LogFilter): boolean {
  if (filter.node !== undefined && record.node !== filter.node) return false;
  if (filter.level !== undefined && !levelAtLeast(record.level, filter.level)) return false;
  if (filter.sinceMs !== undefined && record.time < filter.sinceMs) return false;
  if (filter.requestId !== undefined && record.fields.requestId !== filter.requestId) return false;
  if (filter.slice !== undefined) {
    const slice = record.fields.slice;
    if (typeof slice !== "string") return false;
    if (slice !== filter.slice && !slice.startsWith(filter.slice + ":")) return false;
  }
  return true;
}

export interface LogRingQuery {
  filter: LogFilter;
  /** Matching records returned at most. */
  limit: number;
  /**
   * Absent: the newest `limit` matching records. Given: the oldest `limit` matching records written after the
   * record numbered `afterSeq` (a follower's cursor).
   */
  afterSeq?: number;
  /** Without `afterSeq`: only records numbered below this (the next page of a newest-first answer). */
  beforeSeq?: number;
}

export interface LogRingAnswer {
  /** Oldest first. */
  records: SequencedLogRecord[];
  /** Where a follower continues (`afterSeq` of its next query). */
  cursor: number;
  /** Records written after `afterSeq` that the ring dropped before this query read them. */
  missed: number;
  /** Tells rings apart across restarts: a cursor is meaningful only for the epoch it came from. */
  epoch: string;
}

export interface LogRingStats {
  records: number;
  bytes: number;
  maxRecords: number;
  maxBytes: number;
  /** Records dropped to stay within the limits since the ring was made. */
  dropped: number;
}

/** A bounded memory of recent log records, oldest dropped first. */
export class LogRing {
  readonly limits: LogRingLimits;
  readonly epoch = randomHex(6);
  /** Circular buffer: `#count` records starting at `#head`. */
  readonly #records: (SequencedLogRecord | undefined)[];
  readonly #sizes: number[];
  #head = 0;
  #count = 0;
  #bytes = 0;
  #lastSeq = 0;
  #dropped = 0;

  constructor(limits: Partial<LogRingLimits> = {}) {
    this.limits = { ...DEFAULT_LOG_RING_LIMITS, ...limits };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isInteger(value) || value < 1) {
        throw new RangeError(`LogRing: ${name} must be a positive integer, got ${value}`);
      }
    }
    this.#records = new Array(this.limits.maxRecords);
    this.#sizes = new Array(this.limits.maxRecords).fill(0);
  }

  /** Keeps `record`; `sizeBytes` is what it counts against `maxBytes` (its line's length). */
  append(record: LogRecord, sizeBytes: number): void {
    const size = Math.max(1, sizeBytes);
    while (
      this.#count > 0 && (this.#count >= this.limits.maxRecords || this.#bytes + size > this.limits.maxBytes)
    ) {
      this.#dropOldest();
    }
    if (size > this.limits.maxBytes) {
      // Larger than the whole ring: counted as written and dropped, never kept.
      this.#lastSeq++;
      this.#dropped++;
      return;
    }
    const at = (this.#head + this.#count) % this.limits.maxRecords;
    this.#records[at] = { ...record, seq: ++this.#lastSeq };
    this.#sizes[at] = size;
    this.#count++;
    this.#bytes += size;
  }

  #dropOldest(): void {
    this.#records[this.#head] = undefined;
    this.#bytes -= this.#sizes[this.#head];
    this.#head = (this.#head + 1) % this.limits.maxRecords;
    this.#count--;
    this.#dropped++;
  }

  #at(index: number): SequencedLogRecord {
    return this.#records[(this.#head + index) % this.limits.maxRecords]!;
  }

  query(q: LogRingQuery): LogRingAnswer {
    if (q.afterSeq === undefined) return this.#newest(q);
    const firstSeq = this.#lastSeq - this.#count + 1;
    const missed = Math.max(0, firstSeq - 1 - q.afterSeq);
    const records: SequencedLogRecord[] = [];
    for (let i = Math.max(0, q.afterSeq + 1 - firstSeq); i < this.#count; i++) {
      const record = this.#at(i);
      if (!matchesLogFilter(record, q.filter)) continue;
      if (records.length === q.limit) {
        return { records, cursor: records.at(-1)!.seq, missed, epoch: this.epoch };
      }
      records.push(record);
    }
    return { records, cursor: this.#lastSeq, missed, epoch: this.epoch };
  }

  #newest(q: LogRingQuery): LogRingAnswer {
    const records: SequencedLogRecord[] = [];
    const firstSeq = this.#lastSeq - this.#count + 1;
    const start = q.beforeSeq === undefined
      ? this.#count - 1
      : Math.min(this.#count - 1, q.beforeSeq - 1 - firstSeq);
    for (let i = start; i >= 0 && records.length < q.limit; i--) {
      const record = this.#at(i);
      // Older records cannot be newer than `sinceMs` either (times only grow, give or take a clock step).
      if (q.filter.sinceMs !== undefined && record.time < q.filter.sinceMs) break;
      if (matchesLogFilter(record, q.filter)) records.push(record);
    }
    return { records: records.reverse(), cursor: this.#lastSeq, missed: 0, epoch: this.epoch };
  }

  get stats(): LogRingStats {
    return { records: this.#count, bytes: this.#bytes, ...this.limits, dropped: this.#dropped };
  }
}
