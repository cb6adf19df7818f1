/**
 * The node's sandbox flags: default CPU limits of every slice instance (a blueprint's `[[slices]]` keys
 * override them per slice) and whether worker isolation is for every slice or only trusted ones. Parsed apart
 * from flags.ts so the table of what each flag sets is in one place.
 */

import { AetherError } from "../core/mod.ts";
import { checkCpuLimits, DEFAULT_HOST_LIMITS, type SliceCpuLimits } from "../sandbox/mod.ts";

/** parseArgs options of the sandbox flags. */
export const SANDBOX_FLAG_OPTIONS = {
  "slice-cpu-soft-share": { type: "string" },
  "slice-cpu-hard-share": { type: "string" },
  "slice-cpu-window-ms": { type: "string" },
  "slice-call-cpu-ms": { type: "string" },
  "trust-all-slices": { type: "boolean" },
} as const;

export const SANDBOX_USAGE_SYNOPSIS =
  `                   [--slice-cpu-soft-share 0.8] [--slice-cpu-hard-share 0.9] [--slice-cpu-window-ms 10000]
                   [--slice-call-cpu-ms 10000] [--trust-all-slices]`;

export const SANDBOX_USAGE =
  `  --slice-cpu-soft-share  process isolation: a slice's sandbox using more than this share of a core over
                 the window takes no new calls, finishes its own and is replaced (default ${DEFAULT_HOST_LIMITS.softCpuShare}; 0 = off)
  --slice-cpu-hard-share  over this share its sandbox is killed at once and replaced (default ${DEFAULT_HOST_LIMITS.maxCpuShare}; 0 = off)
  --slice-cpu-window-ms   the window both shares are measured over (default ${DEFAULT_HOST_LIMITS.cpuWindowMs})
  --slice-call-cpu-ms     CPU time one call may use; over it the sandbox is killed and the call answered 503
                 (default ${DEFAULT_HOST_LIMITS.maxCallCpuMs}; 0 = off). A blueprint's cpuSoftShare, cpuHardShare, cpuWindowMs
                 and callCpuMs override these four for its slices
  --trust-all-slices  with --sandbox worker: every slice runs in a Worker; without it only slices whose
                 blueprint says trusted = true do, the others in a process (a Worker's memory and CPU are
                 not bounded)`;

export interface SandboxFlags {
  /** The CPU limits given on the command line (the others keep the sandbox's defaults). */
  sliceLimits: SliceCpuLimits;
  trustAllSlices: boolean;
}

type Values = { [K in keyof typeof SANDBOX_FLAG_OPTIONS]?: K extends "trust-all-slices" ? boolean : string };

const LIMIT_OF_FLAG = {
  "slice-cpu-soft-share": "softCpuShare",
  "slice-cpu-hard-share": "maxCpuShare",
  "slice-cpu-window-ms": "cpuWindowMs",
  "slice-call-cpu-ms": "maxCallCpuMs",
} as const;

export function parseSandboxFlags(values: Values): SandboxFlags {
  const sliceLimits: SliceCpuLimits = {};
  for (
    const [flag, limit] of Object.entries(LIMIT_OF_FLAG) as [
      keyof typeof LIMIT_OF_FLAG,
      keyof SliceCpuLimits,
    ][]
  ) {
    const text = values[flag];
    if (text === undefined) continue;
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value)) throw flagError(flag, `"${text}" is not a number`);
    sliceLimits[limit] = value;
    try {
      checkCpuLimits({ ...DEFAULT_HOST_LIMITS, ...sliceLimits });
    } catch (e) {
      // The sandbox names its limit; the operator typed the flag.
      throw flagError(flag, (e as Error).message.replace(`limits.${limit}`, `"${text}"`));
    }
  }
  return { sliceLimits, trustAllSlices: values["trust-all-slices"] ?? false };
}

function flagError(flag: string, message: string): AetherError {
  return new AetherError("invalid_flag", `--${flag}: ${message}`, { flag });
}
