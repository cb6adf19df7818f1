/**
 * Durable state machines: slices declare machines in their manifest (`machines`, slices/_machines.ts); each
 * instance is the record `machines/{group}/{machine}/{id}` in the consensus KV (runtime/model/scheduler.ts).
 *
 * - **send(id, event, data)**: reads the instance (absent: a new one in the initial state), finds the
 *   transition for the event in its state, checks the guards on the instance's data merged with the event's,
 *   and writes the new state as a **compare-and-set on the record's modRevision** (0: only if absent). Two
 *   events racing on one version: the log orders the writes, the second one's compare fails, and it is tried
 *   again on the new version (its transition and guards judged afresh, so it may now be refused). Events are
 *   therefore never lost silently (each is applied or answered with an error) and never both applied on the
 *   same version.
 * - **timeouts**: entering a state with `timeout: {afterMs, event}` writes a one-off scheduler job
 *   `sm.{machine}.{id}` that sends the event when it fires, only if the instance is still in that state at
 *   that version (so a timeout never fires into a later visit of the state). At least once, never early, like
 *   every job (scheduler.ts).
 * - **onEnter**: a method of the declaring slice called after the transition committed, by the node that
 *   applied it, once (at most once: if that node dies before the call, the call is lost; use a timeout or a
 *   job for work that must happen).
 * - **definitions** come from the manifests in the artifact records: the declaring slice's version recorded
 *   on the instance (`definedBy`), else the most recently pushed artifact of the group that declares it.
 */

import { AetherError, type Logger, type NodeId } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvState } from "../kv/mod.ts";
import {
  decodeMachineInstance,
  encodeMachineInstance,
  type JsonValue,
  type MachineInstance,
  machineKey,
  machinesOfGroupPrefix,
  machinesPrefix,
  MAX_MACHINE_HISTORY,
  MAX_MACHINE_INSTANCES_PER_GROUP,
} from "../model/mod.ts";
import { failedGuard, type ManifestMachine } from "../../slices/host.ts";
import type { Scheduler, SliceInvoke } from "./scheduler.ts";
import type { InfraService, ServiceCall } from "./services.ts";

/** The largest data an instance keeps (bytes of JSON), and the largest event data. */
const MAX_DATA_BYTES = 64 * 1024;
const MAX_EVENT_DATA_BYTES = 16 * 1024;
/** Compare-and-set attempts of one event before it gives up (409). */
const MAX_ATTEMPTS = 50;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

export interface StateMachinesOptions {
  self: NodeId;
  log: Logger;
  kv: KvAccess;
  state(): KvState;
  scheduler: Scheduler;
  invoke: SliceInvoke;
}

export interface StateMachines {
  /** Answers `ctx.infra.machine(name)` calls: send, get. */
  serve(call: ServiceCall): Promise<unknown>;
  machines(group?: string): Array<{ group: string; machine: string; definedBy: string; instances: number }>;
  list(group: string, machine: string, limit: number): MachineInstance[];
  get(group: string, machine: string, id: string): Promise<MachineInstance | undefined>;
  /** Removes an instance (and its pending state timeout); false when absent. */
  remove(group: string, machine: string, id: string): Promise<boolean>;
  send(
    group: string,
    machine: string,
    id: string,
    event: unknown,
    data: unknown,
    from: string,
    ifVersion?: number,
  ): Promise<MachineInstance>;
}

const utf8 = new TextDecoder();

/** Every machine declared by an artifact of `group` (or of every group), newest push first. */
function declarations(
  state: KvState,
  group?: string,
): Array<
  { group: string; machine: string; coordinates: string; definition: ManifestMachine; pushedAt: number }
> {
  const out = [];
  for (const entry of state.range(group === undefined ? "artifacts/" : `artifacts/${group}:`)) {
    let record: {
      manifest?: { coordinates?: string; machines?: Record<string, ManifestMachine> };
      pushedAt?: number;
    };
    try {
      record = JSON.parse(utf8.decode(entry.value));
    } catch {
      continue;
    }
    const machines = record.manifest?.machines;
    const coordinates = record.manifest?.coordinates;
    if (!machines || typeof coordinates !== "string") continue;
    for (const [machine, definition] of Object.entries(machines)) {
      out.push({
        group: coordinates.split(":")[0],
        machine,
        coordinates,
        definition,
        pushedAt: record.pushedAt ?? 0,
      });
    }
  }
  return out.sort((a, b) => b.pushedAt - a.pushedAt);
}

function dataBytes(value: unknown): number {
  return new TextEncoder().encode(JSON.stringify(value)).byteLength;
}

function refused(message: string, details?: Record<string, unknown>): AetherError {
  return new AetherError("conflict", message, {
    errorName: "TransitionRefused",
    ...(details ? { details } : {}),
  });
}

export function startStateMachines(options: StateMachinesOptions): StateMachines {
  const log = options.log.with({ component: "statemachine" });

  /** The definition to use: the instance's declaring artifact when it still exists, else the newest. */
  const definitionOf = (group: string, machine: string, definedBy?: string) => {
    const found = declarations(options.state(), group).filter((d) => d.machine === machine);
    const chosen = found.find((d) => d.coordinates === definedBy) ?? found[0];
    if (!chosen) {
      throw new AetherError("not_found", `no slice of group ${group} declares a state machine ${machine}`, {
        errorName: "MachineNotFound",
      });
    }
    return chosen;
  };

  /** A group's instances are bounded: a new one is refused beyond MAX_MACHINE_INSTANCES_PER_GROUP. */
  const checkRoom = (group: string) => {
    const held = options.state().range(machinesOfGroupPrefix(group), MAX_MACHINE_INSTANCES_PER_GROUP).length;
    if (held >= MAX_MACHINE_INSTANCES_PER_GROUP) {
      throw new AetherError(
        "overloaded",
        `group ${group} holds ${MAX_MACHINE_INSTANCES_PER_GROUP} state machine instances, the most it may ` +
          "(delete finished ones)",
        { errorName: "TooManyInstances" },
      );
    }
  };

  const timeoutJob = (machine: string, id: string) => `sm.${machine}.${id}`.slice(0, 128);

  const afterTransition = async (instance: MachineInstance, previous: string | undefined, event: string) => {
    const definition = definitionOf(instance.group, instance.machine, instance.definedBy).definition;
    const entered = definition.states[instance.state];
    const job = timeoutJob(instance.machine, instance.id);
    if (entered?.timeout) {
      await options.scheduler.createInternal(instance.group, job, Date.now() + entered.timeout.afterMs, {
        kind: "machine",
        machine: instance.machine,
        id: instance.id,
        event: entered.timeout.event,
        state: instance.state,
        version: instance.version,
      }).catch((e) => log.warn("state timeout not scheduled", { job, error: String(e) }));
    } else if (previous !== undefined && definition.states[previous]?.timeout) {
      await options.scheduler.remove(instance.group, job).catch(() => {});
    }
    if (entered?.onEnter) {
      const slice = instance.definedBy.split(":").slice(0, 2).join(":");
      options.invoke(slice, entered.onEnter, {
        machine: instance.machine,
        id: instance.id,
        state: instance.state,
        from: previous ?? null,
        event,
        version: instance.version,
        data: instance.data,
      }, { timeoutMs: 30_000, from: `statemachine:${instance.group}/${instance.machine}` })
        .then((outcome) => {
          if (!outcome.ok) {
            log.warn("onEnter failed", { machine: instance.machine, id: instance.id, error: outcome.error });
          }
        })
        .catch((e) =>
          log.warn("onEnter not called", { machine: instance.machine, id: instance.id, error: String(e) })
        );
    }
  };

  const send: StateMachines["send"] = async (group, machine, id, event, data, from, ifVersion) => {
    const key = machineKey(group, machine, id);
    if (typeof event !== "string" || !NAME.test(event)) {
      throw new AetherError(
        "bad_request",
        `event must be an event name (1-128 of A-Z a-z 0-9 . _ : @ -), got ${JSON.stringify(event)}`,
        {
          field: "event",
        },
      );
    }
    if (data !== undefined && data !== null && (typeof data !== "object" || Array.isArray(data))) {
      throw new AetherError("bad_request", `data must be a JSON object, got ${JSON.stringify(data)}`, {
        field: "data",
      });
    }
    const eventData = (data ?? {}) as Record<string, JsonValue>;
    if (dataBytes(eventData) > MAX_EVENT_DATA_BYTES) {
      throw new AetherError("bad_request", `data is over ${MAX_EVENT_DATA_BYTES} bytes of JSON`, {
        field: "data",
      });
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // The first look is local; after a failed compare, a linearizable read (the local replica may lag).
      const entry = attempt === 0
        ? options.state().get(key)
        : await options.kv.get(key, { consistent: true, timeoutMs: 5_000 });
      const current = entry === undefined ? undefined : decodeMachineInstance(entry.value, key);
      if (ifVersion !== undefined && current?.version !== ifVersion) {
        throw refused(`${machine} ${id} is no longer at version ${ifVersion}`);
      }
      if (current === undefined) checkRoom(group);
      const declared = definitionOf(group, machine, current?.definedBy);
      const definition = declared.definition;
      const nowMs = Date.now();
      const instance: MachineInstance = current ?? {
        group,
        machine,
        id,
        state: definition.initial,
        version: 0,
        definedBy: declared.coordinates,
        data: {},
        createdAtMs: nowMs,
        updatedAtMs: nowMs,
        history: [],
      };
      const state = definition.states[instance.state];
      const transition = state?.on[event];
      if (!transition) {
        const events = Object.keys(state?.on ?? {});
        throw refused(
          `${machine} ${id} is in state ${instance.state}, which has no transition for event ${event} ` +
            `(events: ${events.join(", ") || "none"})`,
          { state: instance.state, version: instance.version },
        );
      }
      const merged = { ...instance.data, ...eventData };
      const failed = failedGuard(transition.guard, merged);
      if (failed) {
        throw refused(
          `${machine} ${id}: the guard of ${instance.state} --${event}--> ${transition.target} refused ` +
            `(${failed.field} ${failed.op}${
              failed.value === undefined ? "" : ` ${JSON.stringify(failed.value)}`
            })`,
          { state: instance.state, version: instance.version },
        );
      }
      if (dataBytes(merged) > MAX_DATA_BYTES) {
        throw new AetherError(
          "bad_request",
          `${machine} ${id}: data would be over ${MAX_DATA_BYTES} bytes of JSON`,
          {
            field: "data",
          },
        );
      }
      const next: MachineInstance = {
        ...instance,
        state: transition.target,
        version: instance.version + 1,
        data: merged,
        updatedAtMs: nowMs,
        history: [...instance.history, {
          from: instance.state,
          to: transition.target,
          event,
          version: instance.version + 1,
          atMs: nowMs,
          node: options.self,
        }].slice(-MAX_MACHINE_HISTORY),
      };
      try {
        await options.kv.write({
          type: "put",
          key,
          value: encodeMachineInstance(next),
          ifRevision: entry?.modRevision ?? 0,
        }, { timeoutMs: 5_000 });
      } catch (e) {
        if (e instanceof AetherError && e.code === "compare_failed") continue;
        throw e;
      }
      log.debug("transition", {
        key,
        from: instance.state,
        to: next.state,
        event,
        version: next.version,
        by: from,
      });
      await afterTransition(next, current === undefined ? undefined : instance.state, event);
      return next;
    }
    throw new AetherError(
      "conflict",
      `${machine} ${id}: ${MAX_ATTEMPTS} concurrent events won first; try again`,
      {
        errorName: "TooMuchContention",
      },
    );
  };

  options.scheduler.onMachineTimeout(async (group, target) => {
    try {
      await send(group, target.machine, target.id, target.event, {}, "timeout", target.version);
    } catch (e) {
      // Moved on meanwhile (another event won): the timeout belongs to an earlier visit of the state.
      if (!(e instanceof AetherError && e.extra.errorName === "TransitionRefused")) throw e;
    }
  });

  const machines: StateMachines = {
    serve: (call) => serve(machines, call),
    machines(group) {
      const seen = new Map<
        string,
        { group: string; machine: string; definedBy: string; instances: number }
      >();
      for (const d of declarations(options.state(), group)) {
        const name = `${d.group}/${d.machine}`;
        if (seen.has(name)) continue;
        let instances = 0;
        for (const _ of options.state().range(machinesPrefix(d.group, d.machine))) instances++;
        seen.set(name, { group: d.group, machine: d.machine, definedBy: d.coordinates, instances });
      }
      return [...seen.values()];
    },
    list: (group, machine, limit) =>
      options.state().range(machinesPrefix(group, machine), limit).map((e) =>
        decodeMachineInstance(e.value, e.key)
      ),
    async get(group, machine, id) {
      const key = machineKey(group, machine, id);
      const entry = await options.kv.get(key, { consistent: true, timeoutMs: 5_000 });
      return entry === undefined ? undefined : decodeMachineInstance(entry.value, key);
    },
    async remove(group, machine, id) {
      const key = machineKey(group, machine, id);
      const outcome = await options.kv.write({ type: "delete", key }, { timeoutMs: 5_000 });
      await options.scheduler.remove(group, timeoutJob(machine, id)).catch(() => {});
      return (outcome.deleted ?? 0) > 0;
    },
    send,
  };
  return machines;
}

function instanceView(instance: MachineInstance) {
  return {
    machine: instance.machine,
    id: instance.id,
    state: instance.state,
    version: instance.version,
    data: instance.data,
    history: instance.history,
  };
}

async function serve(machines: StateMachines, call: ServiceCall): Promise<unknown> {
  const machine = call.payload.machine;
  if (typeof machine !== "string" || !NAME.test(machine)) {
    throw new AetherError("bad_request", `statemachine.${call.method}: machine must be a machine name`, {
      field: "machine",
    });
  }
  const id = call.payload.id;
  if (typeof id !== "string" || !NAME.test(id)) {
    throw new AetherError(
      "bad_request",
      `statemachine.${call.method}: id must be 1-128 of A-Z a-z 0-9 . _ : @ -, got ${JSON.stringify(id)}`,
      { field: "id" },
    );
  }
  switch (call.method) {
    case "send":
      return instanceView(
        await machines.send(call.group, machine, id, call.payload.event, call.payload.data, "slice"),
      );
    case "get": {
      const instance = await machines.get(call.group, machine, id);
      return instance === undefined ? null : instanceView(instance);
    }
    case "delete":
      return await machines.remove(call.group, machine, id);
  }
  throw new AetherError("not_found", `statemachine has no method "${call.method}"`);
}

/** The catalog row; calls are answered by the StateMachines the node started (services.ts `kvServed`). */
export const STATEMACHINE_SERVICE: InfraService = {
  name: "statemachine",
  version: "1.0.0",
  description: "durable state machines declared by slices, transitions by compare-and-set, state timeouts",
  methods: ["send", "get", "delete"],
};
