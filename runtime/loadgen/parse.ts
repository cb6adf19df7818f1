/**
 * The load generator's flag values: rates, durations, targets and base URLs as text, checked, each mistake
 * naming its flag (the CLI and `LoadOptions` share them).
 */

import { AetherError } from "../core/mod.ts";

export const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] as const;
export const MAX_RATE_PER_SECOND = 100_000;
export const MAX_DURATION_MS = 24 * 3_600_000;

export function invalid(message: string, field: string): AetherError {
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
