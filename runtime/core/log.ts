/**
 * Structured logging to standard error, one line per record: `time level [node] message key=value ...`.
 * Standard output is reserved for machine-readable lines (the node's ready line).
 */

export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export type LogFields = Record<string, unknown>;

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

function formatValue(value: unknown): string {
  if (typeof value === "string") return /[\s="]/.test(value) ? JSON.stringify(value) : value;
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value);
}

export function createLogger(
  options: { level?: LogLevel; name?: string; sink?: LogSink; fields?: LogFields } = {},
): Logger {
  const minRank = LEVEL_RANK[options.level ?? "info"];
  const sink = options.sink ?? stderrSink;
  const base = options.fields ?? {};
  const prefix = options.name ? ` [${options.name}]` : "";
  const write = (level: LogLevel, message: string, fields?: LogFields) => {
    if (LEVEL_RANK[level] < minRank) return;
    const all = { ...base, ...fields };
    const tail = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => ` ${k}=${formatValue(v)}`)
      .join("");
    sink(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)}${prefix} ${message}${tail}`);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    with: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
    enabled: (level) => LEVEL_RANK[level] >= minRank,
  };
}

/** A logger that drops everything (for benchmarks and tests that assert on other output). */
export const silentLogger: Logger = createLogger({ level: "error", sink: () => {} });
