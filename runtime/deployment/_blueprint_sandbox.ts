/**
 * A blueprint slice's sandbox keys (`[[slices]]`): `trusted` (may run in worker isolation) and its CPU limits,
 * which override the node's defaults (`--slice-cpu-*` flags) for its instances:
 *
 * | key            | host limit (runtime/sandbox)  | range                             |
 * | -------------- | ----------------------------- | --------------------------------- |
 * | `cpuSoftShare` | `softCpuShare` (retired)      | 0 (off) to 64 cores, below hard   |
 * | `cpuHardShare` | `maxCpuShare` (killed)        | 0 (off) to 64 cores               |
 * | `cpuWindowMs`  | `cpuWindowMs`                 | 500 to 3600000                    |
 * | `callCpuMs`    | `maxCallCpuMs` (per call)     | 0 (off), or 100 to 3600000        |
 */

import type { SliceCpuLimits, SliceSandboxSettings } from "../sandbox/mod.ts";

export const SANDBOX_KEYS = ["trusted", "cpuSoftShare", "cpuHardShare", "cpuWindowMs", "callCpuMs"] as const;

/** The largest CPU share a slice may be given (as the sandbox host checks). */
const MAX_SHARE = 64;
const MAX_MS = 3_600_000;

type Report = (key: string, message: string) => void;

/** The sandbox settings of one `[[slices]]` table; undefined when it sets none. Problems go to `report`. */
export function sandboxSettings(
  table: Record<string, unknown>,
  report: Report,
): SliceSandboxSettings | undefined {
  const settings: SliceSandboxSettings = {};
  if (table.trusted !== undefined) {
    if (typeof table.trusted === "boolean") settings.trusted = table.trusted;
    else report("trusted", `must be true or false, got ${shown(table.trusted)}`);
  }
  const limits: SliceCpuLimits = {};
  const soft = share(table, "cpuSoftShare", report);
  const hard = share(table, "cpuHardShare", report);
  if (soft !== undefined) limits.softCpuShare = soft;
  if (hard !== undefined) limits.maxCpuShare = hard;
  if (soft !== undefined && hard !== undefined && soft > 0 && hard > 0 && soft >= hard) {
    report("cpuSoftShare", `(${soft}) must be below cpuHardShare (${hard}): the soft limit retires first`);
  }
  const windowMs = milliseconds(table, "cpuWindowMs", 500, report);
  if (windowMs !== undefined) limits.cpuWindowMs = windowMs;
  const callMs = milliseconds(table, "callCpuMs", 100, report);
  if (callMs !== undefined) limits.maxCallCpuMs = callMs;
  if (Object.keys(limits).length > 0) settings.limits = limits;
  return Object.keys(settings).length > 0 ? settings : undefined;
}

/** A share of one core: a TOML integer or float from 0 (off) to MAX_SHARE. */
function share(table: Record<string, unknown>, key: string, report: Report): number | undefined {
  const value = table[key];
  if (value === undefined) return undefined;
  const n = typeof value === "bigint" ? Number(value) : value;
  if (typeof n !== "number" || !(n >= 0 && n <= MAX_SHARE)) {
    report(
      key,
      `must be a share of one CPU core from 0 (off) to ${MAX_SHARE}, such as 0.5, got ${shown(value)}`,
    );
    return undefined;
  }
  return n;
}

/** Milliseconds: a TOML integer, 0 (off, `callCpuMs` only) or from `min` to MAX_MS. */
function milliseconds(
  table: Record<string, unknown>,
  key: string,
  min: number,
  report: Report,
): number | undefined {
  const value = table[key];
  if (value === undefined) return undefined;
  const offAllowed = key === "callCpuMs";
  const n = typeof value === "bigint" ? Number(value) : undefined;
  if (n === undefined || !((offAllowed && n === 0) || (n >= min && n <= MAX_MS))) {
    const range = `${offAllowed ? "0 (off) or " : ""}an integer from ${min} to ${MAX_MS} (ms)`;
    report(key, `must be ${range}, got ${shown(value)}`);
    return undefined;
  }
  return n;
}

function shown(value: unknown): string {
  if (typeof value === "bigint") return `the integer ${value}`;
  if (typeof value === "number") return `the float ${value}`;
  if (typeof value === "string") return `the string ${JSON.stringify(value.slice(0, 60))}`;
  if (typeof value === "boolean") return `the boolean ${value}`;
  return Array.isArray(value) ? "an array" : "a table";
}
