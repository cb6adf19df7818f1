/**
 * `ctx.infra.scheduler(job)` and `ctx.infra.machine(name)`: clients of the cluster scheduler and the durable
 * state machines (runtime/infra-host/scheduler.ts, statemachine.ts). Jobs and machine instances belong to the
 * calling slice's group. This file must stay free of bare specifiers.
 */

import type { CallOptions, JsonValue } from "./_types.ts";

/** When and what: exactly one of `cron`, `atMs`, `delayMs`. */
export interface JobSchedule {
  /** 5 fields (minute hour day month weekday) or 6 (seconds first); UTC unless `tz`. */
  cron?: string;
  /** An IANA time zone for `cron`, e.g. "Europe/Berlin". */
  tz?: string;
  /** A one-off job at this epoch ms. */
  atMs?: number;
  /** A one-off job this many ms from now. */
  delayMs?: number;
  /** The slice to call: "artifact" or "group:artifact" of the caller's group (default: the caller). */
  slice?: string;
  /** Its method; it receives `{job, scheduledAtMs, attempt, payload}`. */
  method: string;
  payload?: JsonValue;
  /** After downtime: "skip" (default) the missed occurrences, or "catchup" (fire each, up to 100). */
  misfire?: "skip" | "catchup";
  /** Lateness beyond which an occurrence counts as missed (default 1000). */
  misfireGraceMs?: number;
  /** Replace a job of the same name instead of failing with `JobExists` (409). */
  replace?: boolean;
}

export interface JobRun {
  occurrenceMs: number;
  firedAtMs?: number;
  durationMs?: number;
  outcome: "ok" | "error" | "skipped" | "manual";
  attempt: number;
  node: string;
  skipped?: number;
  error?: string;
}

export interface JobInfo {
  group: string;
  name: string;
  schedule: string;
  paused: boolean;
  nextAtMs: number | null;
  fired: number;
  lastRun: JobRun | null;
}

export interface SchedulerClient {
  schedule(schedule: JobSchedule, options?: CallOptions): Promise<JobInfo>;
  /** null when there is no such job. */
  get(options?: CallOptions): Promise<JobInfo | null>;
  pause(options?: CallOptions): Promise<JobInfo>;
  resume(options?: CallOptions): Promise<JobInfo>;
  delete(options?: CallOptions): Promise<boolean>;
  /** Fires the job now (recorded as `manual`): the method's outcome. */
  run(options?: CallOptions): Promise<{ ok: boolean; value?: JsonValue; error?: JsonValue }>;
  history(options?: CallOptions): Promise<JobRun[]>;
}

export interface MachineState {
  machine: string;
  id: string;
  state: string;
  version: number;
  data: Record<string, JsonValue>;
  history: Array<{ from: string; to: string; event: string; version: number; atMs: number; node: string }>;
}

export interface MachineClient {
  /**
   * Applies `event` to instance `id` (created in the initial state when absent) by compare-and-set; `data`
   * is merged into the instance's data. Throws `TransitionRefused` (409) when the state has no transition
   * for the event or its guard refuses.
   */
  send(
    id: string,
    event: string,
    data?: Record<string, JsonValue>,
    options?: CallOptions,
  ): Promise<MachineState>;
  /** null when absent. */
  get(id: string, options?: CallOptions): Promise<MachineState | null>;
  /** Removes the instance (a group keeps at most 10 000); false when absent. */
  delete(id: string, options?: CallOptions): Promise<boolean>;
}

type Send = (method: string, payload: Record<string, JsonValue>, options?: CallOptions) => Promise<unknown>;

export function schedulerClient(send: Send): SchedulerClient {
  return {
    schedule: async (schedule, options) =>
      (await send("schedule", { ...schedule } as unknown as Record<string, JsonValue>, options)) as never,
    get: async (options) => (await send("get", {}, options)) as never,
    pause: async (options) => (await send("pause", {}, options)) as never,
    resume: async (options) => (await send("resume", {}, options)) as never,
    delete: async (options) => (await send("delete", {}, options)) as boolean,
    run: async (options) => (await send("run", {}, options)) as never,
    history: async (options) => (await send("history", {}, options)) as never,
  };
}

export function machineClient(send: Send): MachineClient {
  return {
    send: async (id, event, data, options) =>
      (await send("send", { id, event, ...(data === undefined ? {} : { data }) }, options)) as never,
    get: async (id, options) => (await send("get", { id }, options)) as never,
    delete: async (id, options) => (await send("delete", { id }, options)) as boolean,
  };
}
