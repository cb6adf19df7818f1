/** Plain-text tables for terminal output. */
export function table(headers: string[], rows: (string | number | boolean | null | undefined)[][]): string {
  const cells = rows.map((row) => row.map((v) => (v === null || v === undefined ? "-" : String(v))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i])).join("  ").trimEnd();
  return [line(headers), ...cells.map(line)].join("\n");
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${Math.floor(seconds % 60)}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}

// deno-lint-ignore no-control-regex -- control characters are exactly what must not reach a terminal raw
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * `text` safe for one terminal line: control characters (NUL, CR, LF, ESC of an ANSI sequence, DEL, C1) and
 * line separators become `\u{..}` escapes, so a key or value cannot break the table, move the cursor or
 * fake output. (The `app/` schema forbids them in new keys; older keys and runtime values may still hold them.)
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u{${c.charCodeAt(0).toString(16).padStart(2, "0")}}`);
}
