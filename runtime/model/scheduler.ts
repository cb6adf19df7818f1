/**
 * The scheduler and state-machine families (runtime/infra-host/scheduler.ts and statemachine.ts serve them),
 * all written through consensus:
 *
 * | key                                  | record          | written by                                       |
 * | ------------------------------------ | --------------- | ------------------------------------------------ |
 * | `jobs/{group}/{name}`                | JobRecord       | create (only if absent), pause/resume (CAS), the |
 * |                                      |                 | leader's claim and completion (CAS, fenced)      |
 * | `machines/{group}/{machine}/{id}`    | MachineInstance | every transition, as a CAS on its modRevision    |
 *
 * One record per job holds its definition, its next occurrence, the claim of the occurrence being fired and
 * its bounded history, so a claim, a completion and an operator's pause are each one compare-and-set on it.
 */

import { AetherError } from "../core/mod.ts";
import {
  array,
  type Check,
  integer,
  json,
  type JsonValue,
  literal,
  object,
  optional,
  string,
  timestamp,
  validate,
} from "./_validate.ts";

export const JOBS_PREFIX = "jobs/";
export const MACHINES_PREFIX = "machines/";
/** The most jobs one group may hold (each is one consensus record); finished one-off jobs count. */
export const MAX_JOBS_PER_GROUP = 1_000;
/** The most jobs the cluster holds (state-machine timeouts included). */
export const MAX_JOBS = 20_000;
/** History entries kept per job and per machine instance (the oldest go first). */
export const MAX_JOB_HISTORY = 20;
export const MAX_MACHINE_HISTORY = 20;
/** Instances of state machines one group may keep (each is one consensus record; `delete` frees one). */
export const MAX_MACHINE_INSTANCES_PER_GROUP = 10_000;
/** Names of jobs, machines and instance ids, in bytes. */
export const MAX_SCHEDULER_NAME_BYTES = 128;

const GROUP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

export type MisfirePolicy = "skip" | "catchup";

/** What a job does when it fires. */
export type JobTarget =
  /** Calls `method` of the slice `slice` ("group:artifact", of the job's group) with the job's payload. */
  | { kind: "slice"; slice: string; method: string; payload: JsonValue }
  /** Sends `event` to a state machine instance if it is still in `state` at `version` (a state timeout). */
  | { kind: "machine"; machine: string; id: string; event: string; state: string; version: number };

export interface JobHistoryEntry {
  /** The occurrence's scheduled time (epoch ms). */
  occurrenceMs: number;
  /** When the call started (epoch ms, the firing leader's clock); absent for skipped occurrences. */
  firedAtMs?: number;
  durationMs?: number;
  outcome: "ok" | "error" | "skipped" | "manual";
  /** 1 on the first claim of the occurrence; 2+ when a new leader fired it again. */
  attempt: number;
  node: string;
  /** For `skipped`: how many occurrences were skipped together. */
  skipped?: number;
  error?: string;
}

export interface JobRecord {
  group: string;
  name: string;
  /** Exactly one of `cron` (5 or 6 fields, UTC unless `tz`) and `atMs` (a one-off job). */
  cron?: string;
  tz?: string;
  atMs?: number;
  target: JobTarget;
  misfire: MisfirePolicy;
  /** Lateness beyond which an occurrence counts as misfired (default 1000 ms). */
  misfireGraceMs: number;
  paused: boolean;
  /** api | slice | manifest | machine */
  source: string;
  createdAtMs: number;
  /** The next occurrence to fire; null once a one-off job has fired. */
  nextAtMs: number | null;
  /** The occurrence being fired: set by the leader's claim, removed by its completion. */
  claim?: { occurrenceMs: number; node: string; attempt: number; claimedAtMs: number };
  /** Occurrences fired (completed) so far. */
  fired: number;
  history: JobHistoryEntry[];
}

const historyCheck: Check<JobHistoryEntry> = object({
  occurrenceMs: timestamp(),
  firedAtMs: optional(timestamp()),
  durationMs: optional(integer()),
  outcome: literal(["ok", "error", "skipped", "manual"] as const),
  attempt: integer(1),
  node: string({ maxLength: 128 }),
  skipped: optional(integer()),
  error: optional(string({ maxLength: 1024 })),
});

const targetCheck: Check<JobTarget> = (value, path) => {
  const kind = (value as { kind?: unknown } | null)?.kind;
  if (kind === "machine") {
    return object({
      kind: literal(["machine"] as const),
      machine: string({ pattern: NAME }),
      id: string({ maxLength: 512 }),
      event: string({ pattern: NAME }),
      state: string({ pattern: NAME }),
      version: integer(),
    })(value, path);
  }
  return object({
    kind: literal(["slice"] as const),
    slice: string({ maxLength: 256 }),
    method: string({ maxLength: 128 }),
    payload: json(),
  })(value, path);
};

export const jobRecordCheck: Check<JobRecord> = object({
  group: string({ pattern: GROUP }),
  name: string({ pattern: NAME }),
  cron: optional(string({ maxLength: 256 })),
  tz: optional(string({ maxLength: 64 })),
  atMs: optional(timestamp()),
  target: targetCheck,
  misfire: literal(["skip", "catchup"] as const),
  misfireGraceMs: integer(0, 86_400_000),
  paused: (v, p) => {
    if (typeof v !== "boolean") throw new AetherError("bad_request", `${p} must be a boolean`);
    return v;
  },
  source: string({ maxLength: 32 }),
  createdAtMs: timestamp(),
  nextAtMs: (v, p) => v === null ? null : timestamp()(v, p),
  claim: optional(object({
    occurrenceMs: timestamp(),
    node: string({ maxLength: 128 }),
    attempt: integer(1),
    claimedAtMs: timestamp(),
  })),
  fired: integer(),
  history: array(historyCheck),
}) as Check<JobRecord>;

function checkPart(kind: string, value: string, pattern: RegExp): string {
  if (!pattern.test(value)) {
    throw new AetherError(
      "bad_request",
      `${kind} ${
        JSON.stringify(value.slice(0, 140))
      } must be 1-128 of letters, digits, '.', '_', '-', ':', '@'`,
      { field: kind },
    );
  }
  return value;
}

/** `jobs/{group}/{name}`. */
export function jobKey(group: string, name: string): string {
  return `${JOBS_PREFIX}${checkPart("group", group, GROUP)}/${checkPart("job", name, NAME)}`;
}

/** `jobs/{group}/`: every job of a group. */
export function jobsOfGroupPrefix(group: string): string {
  return `${JOBS_PREFIX}${checkPart("group", group, GROUP)}/`;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function parseJson(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(utf8Strict.decode(bytes));
  } catch (e) {
    throw new AetherError("bad_request", `${where}: not UTF-8 JSON (${(e as Error).message})`);
  }
}

export function encodeJobRecord(record: JobRecord): Uint8Array {
  return utf8.encode(JSON.stringify(validate(jobRecordCheck, record, "job record")));
}

export function decodeJobRecord(bytes: Uint8Array, where = "job record"): JobRecord {
  return validate(jobRecordCheck, parseJson(bytes, where), where);
}

// ---------------------------------------------------------------------------------------------------------
// State machine instances

export interface MachineHistoryEntry {
  from: string;
  to: string;
  event: string;
  /** The instance's version after the transition. */
  version: number;
  atMs: number;
  node: string;
}

export interface MachineInstance {
  group: string;
  machine: string;
  id: string;
  state: string;
  /** 1 at creation; +1 with every transition (the compare-and-set is on the record's modRevision). */
  version: number;
  /** The slice whose manifest declares the machine ("group:artifact:version"). */
  definedBy: string;
  /** Data merged from events (`data` of each event, shallow). */
  data: Record<string, JsonValue>;
  createdAtMs: number;
  updatedAtMs: number;
  history: MachineHistoryEntry[];
}

const machineHistoryCheck: Check<MachineHistoryEntry> = object({
  from: string({ maxLength: 128 }),
  to: string({ maxLength: 128 }),
  event: string({ maxLength: 128 }),
  version: integer(1),
  atMs: timestamp(),
  node: string({ maxLength: 128 }),
});

export const machineInstanceCheck: Check<MachineInstance> = object({
  group: string({ pattern: GROUP }),
  machine: string({ pattern: NAME }),
  id: string({ maxLength: 512 }),
  state: string({ maxLength: 128 }),
  version: integer(1),
  definedBy: string({ maxLength: 400 }),
  data: (v, p) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      throw new AetherError("bad_request", `${p} must be an object`);
    }
    return json()(v, p) as Record<string, JsonValue>;
  },
  createdAtMs: timestamp(),
  updatedAtMs: timestamp(),
  history: array(machineHistoryCheck),
}) as Check<MachineInstance>;

const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** `machines/{group}/{machine}/{id}`. */
export function machineKey(group: string, machine: string, id: string): string {
  return `${machinesPrefix(group, machine)}${checkPart("id", id, INSTANCE_ID)}`;
}

/** `machines/{group}/`: every instance of a group. */
export function machinesOfGroupPrefix(group: string): string {
  return `${MACHINES_PREFIX}${checkPart("group", group, GROUP)}/`;
}

/** `machines/{group}/{machine}/`. */
export function machinesPrefix(group: string, machine: string): string {
  return `${MACHINES_PREFIX}${checkPart("group", group, GROUP)}/${checkPart("machine", machine, NAME)}/`;
}

export function encodeMachineInstance(record: MachineInstance): Uint8Array {
  return utf8.encode(JSON.stringify(validate(machineInstanceCheck, record, "machine instance")));
}

export function decodeMachineInstance(bytes: Uint8Array, where = "machine instance"): MachineInstance {
  return validate(machineInstanceCheck, parseJson(bytes, where), where);
}
