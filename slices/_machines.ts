/**
 * Declared state machines and scheduled jobs (`defineSlice({ machines, jobs })`, the manifest's `machines` and
 * `jobs`): their shape and the checks both defineSlice and the manifest run. Pure; no bare specifiers.
 *
 *   machines: {
 *     order: {
 *       initial: "created",
 *       states: {
 *         created: { on: { pay: "paid", cancel: "cancelled" }, timeout: { afterMs: 60_000, event: "expire" } },
 *         paid: { on: { ship: { target: "shipped", guard: { field: "trackingId", op: "exists" } } },
 *                 onEnter: "notifyPaid" },
 *         shipped: {}, cancelled: {}, expired: {},
 *       },
 *     },
 *   },
 *   jobs: { nightly: { cron: "0 3 * * *", method: "report", misfire: "skip" } },
 *
 * Guards are declarative conditions on the instance's data merged with the event's data, not slice methods:
 * the node evaluates them inside the compare-and-set loop, which may run a transition several times under
 * contention; a condition gives the same answer every time and costs nothing, where a slice call would cost a
 * round trip per attempt, could answer differently between attempts, and would hold the instance meanwhile.
 */

import type { JsonValue } from "./_types.ts";

export type GuardOp = "eq" | "ne" | "gt" | "gte" | "lt" | "lte" | "exists" | "absent" | "in";

/** Holds when `data[field] op value` (field: a key or a dotted path). */
export interface GuardCondition {
  field: string;
  op: GuardOp;
  value?: JsonValue;
}

export interface TransitionSpec {
  target: string;
  /** Every condition must hold. */
  guard?: GuardCondition | readonly GuardCondition[];
}

export interface StateSpec {
  /** Event → target state (or a transition with a guard). */
  on?: Readonly<Record<string, string | TransitionSpec>>;
  /** After `afterMs` in this state (the instance still at the version that entered it), `event` is sent. */
  timeout?: { afterMs: number; event: string };
  /** A method of the declaring slice called (at most once) after a transition into this state. */
  onEnter?: string;
}

export interface MachineSpec {
  initial: string;
  states: Readonly<Record<string, StateSpec>>;
}

export interface JobDeclaration {
  /** 5 fields or 6 (seconds first), UTC unless `tz`. */
  cron: string;
  tz?: string;
  /** A method of the declaring slice; it receives `{job, scheduledAtMs, attempt, payload}`. */
  method: string;
  payload?: JsonValue;
  misfire?: "skip" | "catchup";
}

/** A machine as the manifest keeps it: every transition in object form, guards as lists. */
export interface ManifestMachine {
  initial: string;
  states: Record<string, {
    on: Record<string, { target: string; guard: GuardCondition[] }>;
    timeout?: { afterMs: number; event: string };
    onEnter?: string;
  }>;
}

export interface Problem {
  path: string;
  message: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
const METHOD = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FIELD = /^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/;
const OPS: readonly GuardOp[] = ["eq", "ne", "gt", "gte", "lt", "lte", "exists", "absent", "in"];
export const MAX_MACHINES = 32;
export const MAX_STATES = 64;
export const MAX_EVENTS_PER_STATE = 64;
export const MAX_GUARDS = 8;
export const MAX_TIMEOUT_MS = 30 * 86_400_000;
export const MAX_DECLARED_JOBS = 32;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function guardProblems(value: unknown, path: string, problems: Problem[]): GuardCondition[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length > MAX_GUARDS) problems.push({ path, message: `has more than ${MAX_GUARDS} conditions` });
  const out: GuardCondition[] = [];
  list.forEach((g, i) => {
    const at = Array.isArray(value) ? `${path}[${i}]` : path;
    if (!isObject(g)) return problems.push({ path: at, message: "must be { field, op, value }" });
    if (typeof g.field !== "string" || !FIELD.test(g.field)) {
      problems.push({ path: `${at}.field`, message: "must be a data field name or dotted path" });
    }
    if (!OPS.includes(g.op as GuardOp)) {
      problems.push({ path: `${at}.op`, message: `must be one of ${OPS.join(", ")}` });
    }
    const needsValue = g.op !== "exists" && g.op !== "absent";
    if (needsValue && g.value === undefined) {
      problems.push({ path: `${at}.value`, message: `is needed by ${g.op}` });
    }
    if (g.op === "in" && !Array.isArray(g.value)) {
      problems.push({ path: `${at}.value`, message: "must be a list for in" });
    }
    if (["gt", "gte", "lt", "lte"].includes(g.op as string) && typeof g.value !== "number") {
      problems.push({ path: `${at}.value`, message: `must be a number for ${g.op}` });
    }
    out.push({
      field: String(g.field),
      op: g.op as GuardOp,
      ...(needsValue ? { value: g.value as JsonValue } : {}),
    });
  });
  return out;
}

/**
 * Every problem with a `machines` declaration (paths under `path`), and its manifest form. `methods`: the
 * slice's methods, which `onEnter` must name.
 */
export function machinesProblems(
  value: unknown,
  path: string,
  methods?: ReadonlySet<string>,
): { problems: Problem[]; machines: Record<string, ManifestMachine> } {
  const problems: Problem[] = [];
  const machines: Record<string, ManifestMachine> = {};
  if (!isObject(value)) {
    return { problems: [{ path, message: "must be an object of machines by name" }], machines };
  }
  const names = Object.keys(value);
  if (names.length > MAX_MACHINES) {
    problems.push({ path, message: `declares more than ${MAX_MACHINES} machines` });
  }
  for (const name of names) {
    const at = `${path}.${name}`;
    if (!NAME.test(name)) {
      problems.push({ path: at, message: "a machine name is 1-128 of A-Z a-z 0-9 . _ : @ -" });
    }
    const spec = value[name];
    if (!isObject(spec) || !isObject(spec.states)) {
      problems.push({
        path: at,
        message: "must be { initial, states: { name: { on: { event: target } } } }",
      });
      continue;
    }
    const stateNames = Object.keys(spec.states);
    if (stateNames.length === 0 || stateNames.length > MAX_STATES) {
      problems.push({ path: `${at}.states`, message: `must declare 1 to ${MAX_STATES} states` });
    }
    if (typeof spec.initial !== "string" || !stateNames.includes(spec.initial)) {
      problems.push({
        path: `${at}.initial`,
        message: `must name one of the states (${stateNames.join(", ")})`,
      });
    }
    const machine: ManifestMachine = { initial: String(spec.initial), states: {} };
    for (const stateName of stateNames) {
      const sAt = `${at}.states.${stateName}`;
      if (!NAME.test(stateName)) {
        problems.push({ path: sAt, message: "a state name is 1-128 of A-Z a-z 0-9 . _ : @ -" });
      }
      const state = spec.states[stateName];
      if (!isObject(state)) {
        problems.push({ path: sAt, message: "must be { on?, timeout?, onEnter? }" });
        continue;
      }
      for (const key of Object.keys(state)) {
        if (!["on", "timeout", "onEnter"].includes(key)) {
          problems.push({ path: `${sAt}.${key}`, message: "is not a state field (on, timeout, onEnter)" });
        }
      }
      const out: ManifestMachine["states"][string] = { on: {} };
      const on = state.on ?? {};
      if (!isObject(on)) problems.push({ path: `${sAt}.on`, message: "must be an object of event: target" });
      else {
        const events = Object.keys(on);
        if (events.length > MAX_EVENTS_PER_STATE) {
          problems.push({ path: `${sAt}.on`, message: `has more than ${MAX_EVENTS_PER_STATE} events` });
        }
        for (const event of events) {
          const eAt = `${sAt}.on.${event}`;
          if (!NAME.test(event)) {
            problems.push({ path: eAt, message: "an event name is 1-128 of A-Z a-z 0-9 . _ : @ -" });
          }
          const t = on[event];
          const target = typeof t === "string" ? t : isObject(t) ? t.target : undefined;
          if (typeof target !== "string" || !stateNames.includes(target)) {
            problems.push({ path: eAt, message: `must name a target state (${stateNames.join(", ")})` });
            continue;
          }
          const guard = isObject(t) && t.guard !== undefined
            ? guardProblems(t.guard, `${eAt}.guard`, problems)
            : [];
          out.on[event] = { target, guard };
        }
      }
      if (state.timeout !== undefined) {
        const timeout = state.timeout;
        if (!isObject(timeout)) {
          problems.push({ path: `${sAt}.timeout`, message: "must be { afterMs, event }" });
        } else {
          const afterMs = timeout.afterMs;
          if (
            typeof afterMs !== "number" || !Number.isInteger(afterMs) || afterMs < 1 ||
            afterMs > MAX_TIMEOUT_MS
          ) {
            problems.push({
              path: `${sAt}.timeout.afterMs`,
              message: `must be an integer from 1 to ${MAX_TIMEOUT_MS}`,
            });
          }
          if (typeof timeout.event !== "string" || !NAME.test(timeout.event)) {
            problems.push({ path: `${sAt}.timeout.event`, message: "must be an event name" });
          } else if (isObject(on) && !(timeout.event in on)) {
            problems.push({
              path: `${sAt}.timeout.event`,
              message: `"${timeout.event}" has no transition from ${stateName}`,
            });
          }
          out.timeout = { afterMs: Number(afterMs), event: String(timeout.event) };
        }
      }
      if (state.onEnter !== undefined) {
        if (
          typeof state.onEnter !== "string" || !METHOD.test(state.onEnter) ||
          (methods && !methods.has(state.onEnter))
        ) {
          problems.push({ path: `${sAt}.onEnter`, message: "must name a method of the slice" });
        }
        out.onEnter = String(state.onEnter);
      }
      machine.states[stateName] = out;
    }
    machines[name] = machine;
  }
  return { problems, machines };
}

/** Every problem with a `jobs` declaration (the cron expression is checked fully when the job is created). */
export function jobsProblems(
  value: unknown,
  path: string,
  methods?: ReadonlySet<string>,
): { problems: Problem[]; jobs: Record<string, JobDeclaration> } {
  const problems: Problem[] = [];
  const jobs: Record<string, JobDeclaration> = {};
  if (!isObject(value)) return { problems: [{ path, message: "must be an object of jobs by name" }], jobs };
  const names = Object.keys(value);
  if (names.length > MAX_DECLARED_JOBS) {
    problems.push({ path, message: `declares more than ${MAX_DECLARED_JOBS} jobs` });
  }
  for (const name of names) {
    const at = `${path}.${name}`;
    if (!NAME.test(name)) {
      problems.push({ path: at, message: "a job name is 1-128 of A-Z a-z 0-9 . _ : @ -" });
    }
    const job = value[name];
    if (!isObject(job)) {
      problems.push({ path: at, message: 'must be { cron: "0 3 * * *", method: "report" }' });
      continue;
    }
    const fields = typeof job.cron === "string" ? job.cron.trim().split(/\s+/).length : 0;
    if (
      typeof job.cron !== "string" || (fields !== 5 && fields !== 6) ||
      !/^[0-9A-Za-z*/,?#LW\s-]+$/.test(job.cron)
    ) {
      problems.push({
        path: `${at}.cron`,
        message: "must be a cron expression of 5 fields (or 6, seconds first)",
      });
    }
    if (typeof job.method !== "string" || !METHOD.test(job.method) || (methods && !methods.has(job.method))) {
      problems.push({ path: `${at}.method`, message: "must name a method of the slice" });
    }
    if (job.misfire !== undefined && job.misfire !== "skip" && job.misfire !== "catchup") {
      problems.push({ path: `${at}.misfire`, message: 'must be "skip" or "catchup"' });
    }
    if (job.tz !== undefined && typeof job.tz !== "string") {
      problems.push({ path: `${at}.tz`, message: "must be a time zone name" });
    }
    for (const key of Object.keys(job)) {
      if (!["cron", "tz", "method", "payload", "misfire"].includes(key)) {
        problems.push({
          path: `${at}.${key}`,
          message: "is not a job field (cron, tz, method, payload, misfire)",
        });
      }
    }
    jobs[name] = {
      cron: String(job.cron).trim(),
      method: String(job.method),
      ...(job.tz !== undefined ? { tz: String(job.tz) } : {}),
      ...(job.payload !== undefined ? { payload: job.payload as JsonValue } : {}),
      ...(job.misfire !== undefined ? { misfire: job.misfire as "skip" | "catchup" } : {}),
    };
  }
  return { problems, jobs };
}

function fieldOf(data: Record<string, JsonValue>, path: string): JsonValue | undefined {
  let at: JsonValue | undefined = data;
  for (const part of path.split(".")) {
    if (at === null || typeof at !== "object" || Array.isArray(at)) return undefined;
    at = (at as Record<string, JsonValue>)[part];
  }
  return at;
}

/** The first condition that does not hold on `data`, or undefined when all hold. */
export function failedGuard(
  guards: readonly GuardCondition[],
  data: Record<string, JsonValue>,
): GuardCondition | undefined {
  return guards.find((g) => !holds(g, fieldOf(data, g.field)));
}

function holds(g: GuardCondition, v: JsonValue | undefined): boolean {
  switch (g.op) {
    case "exists":
      return v !== undefined && v !== null;
    case "absent":
      return v === undefined || v === null;
    case "eq":
      return JSON.stringify(v) === JSON.stringify(g.value);
    case "ne":
      return JSON.stringify(v) !== JSON.stringify(g.value);
    case "in":
      return Array.isArray(g.value) && g.value.some((x) => JSON.stringify(x) === JSON.stringify(v));
    case "gt":
      return typeof v === "number" && v > (g.value as number);
    case "gte":
      return typeof v === "number" && v >= (g.value as number);
    case "lt":
      return typeof v === "number" && v < (g.value as number);
    case "lte":
      return typeof v === "number" && v <= (g.value as number);
  }
}
