/**
 * NodeDeploymentManager: every node's side of deployment, as a reducer.
 *
 * It reconciles two things: the instance records addressed to this node in KV (`instances/{self}/...`, where
 * the leader writes commands) and what the node's executor actually runs (its local table, the one piece of
 * state that is legitimately local: it describes workers in this process). Each `step` takes the KV state,
 * the executor's outcomes and crashes, the results of earlier writes and whether the node has quorum, and
 * returns executor actions to start and KV transactions to submit.
 *
 * Transitions it makes (each write compares the instance key's modRevision, so it never overwrites a newer
 * command or brings back a key the leader deleted):
 *   LOAD → LOADING (load starts) → LOADED | FAILED
 *   ACTIVATE → ACTIVATING (activate starts) → ACTIVE, publishing an endpoint per method and the node's place in
 *     every HTTP route of the manifest in the same transaction | FAILED
 *   DEACTIVATE → DEACTIVATING, withdrawing endpoints and route places first (same transaction) → LOADED | FAILED
 *   UNLOAD → UNLOADING (unload starts) → the node deletes the key once the instance is released
 *   a crash of a running instance → FAILED, withdrawing its endpoints and routes
 *   a record in a state the node has no instance for (it restarted) → FAILED ("lost"), so the leader replaces it
 *   an instance whose key is gone (the leader removed a departed or stuck node's keys) → stopped and released
 * Route records hold the set of nodes serving a route; the node removes itself when its last instance serving
 * that route stops, and deletes the record when it was the last node.
 *
 * Losing quorum (see `quorumLossDecision`): the node keeps serving the instances it runs (it cannot learn of
 * changes, and its callers may still reach it), starts no new work and writes nothing; operations already
 * running finish and are recorded locally. With `fenceAfterMs` set, it stops its instances once quorum has been
 * gone that long (for slices that must not run twice when the majority has replaced them). When quorum returns,
 * it reconciles against KV: keys the leader removed meanwhile are released, records that no longer match what
 * runs are corrected (FAILED "lost" when an instance is gone).
 */

import { baseOf, type NodeId } from "../core/mod.ts";
import type { KvCompare, KvOp } from "../kv/mod.ts";
import {
  encodeValue,
  type InstanceRecord,
  kvKeys,
  kvPrefixes,
  type LifecycleState,
  type RouteRecord,
} from "../model/mod.ts";
import { type DeployManifest, manifestOfArtifactValue } from "./artifacts.ts";
import type { DeploymentCommand, WriteResult } from "./cluster_manager.ts";
import type { ExecutorAction, ExecutorCrash, ExecutorOp, ExecutorOutcome } from "./executor.ts";
import type { LifecycleCommand } from "../sandbox/mod.ts";
import type { KvReader } from "./view.ts";
import { decodeValueMemo, parseKeyMemo } from "./_memo.ts";

export interface NodeManagerOptions {
  /** Deadlines written into in-progress records (the executor enforces them; the leader reads them). */
  loadingMs: number;
  activatingMs: number;
  deactivatingMs: number;
  unloadingMs: number;
  /** A write whose result never came back stops blocking its instance after this long. */
  pendingTimeoutMs: number;
  quorumLoss: QuorumLossPolicy;
}

export const DEFAULT_NODE_MANAGER_OPTIONS: Readonly<NodeManagerOptions> = Object.freeze({
  loadingMs: 120_000,
  activatingMs: 60_000,
  deactivatingMs: 30_000,
  unloadingMs: 120_000,
  pendingTimeoutMs: 15_000,
  quorumLoss: {},
});

export interface NodeManagerInput {
  kv: KvReader;
  nowMs: number;
  /** Whether this node is connected to a majority (its writes can be decided, its view is current). */
  hasQuorum: boolean;
  outcomes?: readonly ExecutorOutcome[];
  crashes?: readonly ExecutorCrash[];
  results?: readonly WriteResult[];
}

export interface NodeManagerOutput {
  /** Start these on the executor and feed each outcome back. */
  actions: ExecutorAction[];
  commands: DeploymentCommand[];
  wakeAtMs?: number;
}

/**
 * What this node's executor runs for one instance, in the lifecycle vocabulary of the KV records: the states
 * the node itself writes (the in-progress and result states; the leader writes the commands). The NDM sets
 * the in-progress state when it starts an operation and the result from the executor's outcome or crash
 * report; `#reconcile` copies it into the instance's record.
 */
export type RunState = Exclude<LifecycleState, LifecycleCommand>;

/** One instance the executor has, as this node tracks it. */
export interface LocalInstance {
  instanceId: string;
  key: string;
  coordinates: string;
  n: number;
  /** The KV key's createRevision when the instance was started: a re-created key is a different instance. */
  createRevision: number;
  state: RunState;
  /** The operation running on the executor. */
  busy?: ExecutorOp;
  reason?: string;
  /** Crashed with method calls in flight: their request ids (copied into the FAILED record). */
  crashedBy?: string[];
  /** Its KV key is gone: stop and release it. */
  orphan?: boolean;
  /** Stopped because quorum was gone too long. */
  fenced?: boolean;
  /** Orphan whose endpoints and routes were withdrawn. */
  withdrawn?: boolean;
}

// -- quorum loss ---------------------------------------------------------------------------------------------

export interface QuorumLossPolicy {
  /** Stop every local instance once quorum has been gone this long; undefined: keep serving. */
  fenceAfterMs?: number;
}

export interface QuorumLossDecision {
  /** Act on KV commands and write states (only with quorum). */
  acceptCommands: boolean;
  /** Instances that keep running. */
  keep: string[];
  /** Instances to stop now (deactivate if serving, then unload), without writing to KV. */
  stop: string[];
  /** When the decision changes next (the fence time), if it will. */
  reviewAtMs?: number;
}

/**
 * What a node does with its instances while it has no quorum: keep serving, start nothing, write nothing;
 * stop everything once `fenceAfterMs` passed, when the policy sets it. `lostSinceMs` is undefined while the
 * node has quorum.
 */
export function quorumLossDecision(
  instances: readonly Pick<LocalInstance, "instanceId" | "state">[],
  lostSinceMs: number | undefined,
  nowMs: number,
  policy: QuorumLossPolicy,
): QuorumLossDecision {
  const ids = instances.map((i) => i.instanceId);
  if (lostSinceMs === undefined) return { acceptCommands: true, keep: ids, stop: [] };
  const fenceAt = policy.fenceAfterMs === undefined ? undefined : lostSinceMs + policy.fenceAfterMs;
  if (fenceAt !== undefined && nowMs >= fenceAt) return { acceptCommands: false, keep: [], stop: ids };
  return {
    acceptCommands: false,
    keep: ids,
    stop: [],
    ...(fenceAt !== undefined ? { reviewAtMs: fenceAt } : {}),
  };
}

// -- the manager ---------------------------------------------------------------------------------------------

const IN_PROGRESS: Partial<Record<LifecycleState, keyof NodeManagerOptions>> = {
  LOADING: "loadingMs",
  ACTIVATING: "activatingMs",
  DEACTIVATING: "deactivatingMs",
  UNLOADING: "unloadingMs",
};

interface KeyView {
  key: string;
  coordinates: string;
  base: string;
  n: number;
  record: InstanceRecord;
  modRevision: number;
  createRevision: number;
}

class Write {
  readonly #compare = new Map<string, number>();
  readonly #ops: KvOp[] = [];
  readonly #reasons: string[] = [];

  expect(key: string, modRevision: number): void {
    this.#compare.set(key, modRevision);
  }

  put(key: string, value: Uint8Array): void {
    this.#ops.push({ op: "put", key, value });
  }

  delete(key: string): void {
    this.#ops.push({ op: "delete", key });
  }

  note(reason: string): void {
    this.#reasons.push(reason);
  }

  get empty(): boolean {
    return this.#ops.length === 0;
  }

  command(id: string): DeploymentCommand {
    const compare: KvCompare[] = [...this.#compare].map(([key, modRevision]) => ({ key, modRevision }));
    return {
      id,
      command: { type: "txn", compare, success: this.#ops, failure: [] },
      reason: this.#reasons.join("; "),
    };
  }
}

export class NodeDeploymentManager {
  readonly self: NodeId;
  readonly options: Readonly<NodeManagerOptions>;
  /** By instance key. */
  readonly #local = new Map<string, LocalInstance>();
  readonly #byId = new Map<string, LocalInstance>();
  /** Instance key -> the write in flight for it. */
  readonly #pending = new Map<string, { id: string; sentAtMs: number }>();
  /** The last read of this node's instance keys (reused for entries that did not change). */
  #keys = new Map<string, KeyView>();
  readonly #manifests = new Map<string, { modRevision: number; manifest: DeployManifest | undefined }>();
  #lostSinceMs: number | undefined;
  #seq = 0;

  constructor(self: NodeId, options: Partial<NodeManagerOptions> = {}) {
    this.self = self;
    this.options = { ...DEFAULT_NODE_MANAGER_OPTIONS, ...options };
  }

  /** What the executor runs, as tracked here (for status, tests and the simulator's checks). */
  get instances(): readonly LocalInstance[] {
    return [...this.#local.values()].map((l) => ({ ...l }));
  }

  step(input: NodeManagerInput): NodeManagerOutput {
    const now = input.nowMs;
    for (const result of input.results ?? []) {
      for (const [key, pending] of this.#pending) if (pending.id === result.id) this.#pending.delete(key);
    }
    for (const outcome of input.outcomes ?? []) this.#applyOutcome(outcome);
    for (const crash of input.crashes ?? []) {
      const local = this.#byId.get(crash.instanceId);
      if (local && local.state !== "UNLOADING") {
        local.state = "FAILED";
        local.reason = crash.reason;
        if (crash.requestIds && crash.requestIds.length > 0) local.crashedBy = crash.requestIds.slice(0, 8);
      }
    }
    if (input.hasQuorum) this.#lostSinceMs = undefined;
    else this.#lostSinceMs ??= now;

    const actions: ExecutorAction[] = [];
    const commands: DeploymentCommand[] = [];
    let wakeAtMs: number | undefined;
    const wake = (ms: number) => wakeAtMs = Math.min(wakeAtMs ?? Infinity, ms);

    const decision = quorumLossDecision(
      [...this.#local.values()],
      this.#lostSinceMs,
      now,
      this.options.quorumLoss,
    );
    if (decision.reviewAtMs !== undefined) wake(decision.reviewAtMs);
    if (!decision.acceptCommands) {
      for (const id of decision.stop) {
        const local = this.#byId.get(id)!;
        local.fenced = true;
        const action = this.#teardown(local);
        if (action) actions.push(action);
      }
      return { actions, commands, ...(wakeAtMs !== undefined ? { wakeAtMs } : {}) };
    }

    for (const [key, pending] of this.#pending) {
      const expiresAt = pending.sentAtMs + this.options.pendingTimeoutMs;
      if (now >= expiresAt) this.#pending.delete(key);
      else wake(expiresAt);
    }

    const mine = this.#readMine(input.kv);
    // Local instances whose key is gone or was re-created belong to no record any more.
    for (const local of this.#local.values()) {
      const k = mine.get(local.key);
      if (!k || k.createRevision !== local.createRevision) local.orphan = true;
    }
    for (const local of [...this.#local.values()]) {
      if (local.fenced) {
        // Stopped for lack of quorum: finish releasing it; its record is corrected once it is gone.
        const action = this.#teardown(local);
        if (action) actions.push(action);
        continue;
      }
      if (!local.orphan) continue;
      const action = this.#teardown(local);
      if (action) actions.push(action);
      if (!local.withdrawn) {
        // Its endpoints and routes normally went with the key; make sure of it, once.
        local.withdrawn = true;
        const w = new Write();
        this.#withdraw(w, input.kv, local.coordinates, local.n, local.key, mine);
        if (!w.empty) {
          w.note(`withdraw endpoints of ${local.key}: its key is gone`);
          commands.push(w.command(this.#nextId()));
        }
      }
    }
    for (const k of mine.values()) {
      if (this.#pending.has(k.key)) continue;
      const local = this.#local.get(k.key);
      if (local?.orphan) continue; // the previous instance under this key is still being released
      const out = this.#reconcile(k, local, input.kv, mine, now);
      if (out.action) actions.push(out.action);
      if (out.write && !out.write.empty) {
        const command = out.write.command(this.#nextId());
        this.#pending.set(k.key, { id: command.id, sentAtMs: now });
        wake(now + this.options.pendingTimeoutMs);
        commands.push(command);
      }
    }
    return { actions, commands, ...(wakeAtMs !== undefined ? { wakeAtMs } : {}) };
  }

  #nextId(): string {
    return `${this.self}/ndm/${++this.#seq}`;
  }

  #applyOutcome(outcome: ExecutorOutcome): void {
    const local = this.#byId.get(outcome.instanceId);
    if (!local || local.busy !== outcome.op) return;
    local.busy = undefined;
    if (outcome.op === "unload") {
      this.#local.delete(local.key);
      this.#byId.delete(local.instanceId);
      return;
    }
    if (!outcome.ok) {
      local.state = "FAILED";
      local.reason = outcome.reason;
      return;
    }
    const expected: Record<Exclude<ExecutorOp, "unload">, [RunState, RunState]> = {
      load: ["LOADING", "LOADED"],
      activate: ["ACTIVATING", "ACTIVE"],
      deactivate: ["DEACTIVATING", "LOADED"],
    };
    const [from, to] = expected[outcome.op];
    if (local.state === from) local.state = to;
  }

  /** Stops and releases a local instance one step at a time: deactivate if serving, then unload. */
  #teardown(local: LocalInstance): ExecutorAction | undefined {
    if (local.busy) return undefined;
    if (local.state === "ACTIVE") return this.#start(local, "deactivate", "DEACTIVATING");
    if (local.state === "LOADED" || local.state === "FAILED") {
      return this.#start(local, "unload", "UNLOADING");
    }
    return undefined;
  }

  #start(local: LocalInstance, op: ExecutorOp, state: RunState): ExecutorAction {
    local.busy = op;
    local.state = state;
    return { op, instanceId: local.instanceId, artifact: local.coordinates };
  }

  #readMine(kv: KvReader): Map<string, KeyView> {
    const out = new Map<string, KeyView>();
    for (const entry of kv.range(kvPrefixes.instancesOfNode(this.self))) {
      let k = this.#keys.get(entry.key);
      if (k?.modRevision !== entry.modRevision || k.createRevision !== entry.createRevision) {
        try {
          const parsed = parseKeyMemo(entry.key);
          if (parsed.family !== "instance") continue;
          k = {
            key: entry.key,
            coordinates: `${parsed.artifact.group}:${parsed.artifact.artifact}:${parsed.artifact.version}`,
            base: baseOf(parsed.artifact),
            n: parsed.n,
            record: decodeValueMemo("instance", entry.value),
            modRevision: entry.modRevision,
            createRevision: entry.createRevision,
          };
        } catch {
          continue; // a record that does not decode is not a command this node can act on
        }
      }
      out.set(entry.key, k);
    }
    this.#keys = out;
    return out;
  }

  #manifest(kv: KvReader, coordinates: string): DeployManifest | undefined {
    const key = kvKeys.artifact(coordinates);
    const entry = kv.get(key);
    if (!entry) return undefined;
    const cached = this.#manifests.get(coordinates);
    if (cached?.modRevision === entry.modRevision) return cached.manifest;
    let manifest: DeployManifest | undefined;
    try {
      manifest = manifestOfArtifactValue(key, entry.value);
    } catch {
      manifest = undefined;
    }
    this.#manifests.set(coordinates, { modRevision: entry.modRevision, manifest });
    return manifest;
  }

  /** The record this node writes for `state`, keeping the leader's fields. */
  #record(
    k: KeyView,
    state: LifecycleState,
    now: number,
    reason?: string,
    lost = false,
    crashedBy?: string[],
  ): Uint8Array {
    const record: InstanceRecord = { state, updatedAt: now };
    if (lost) record.lost = true;
    if (crashedBy !== undefined) record.crashedBy = crashedBy.map((id) => id.slice(0, 128));
    const limit = IN_PROGRESS[state];
    if (limit) record.deadline = now + (this.options[limit] as number);
    if (reason !== undefined) record.reason = reason.slice(0, 4096);
    if (k.record.replaces) record.replaces = k.record.replaces;
    if (k.record.retiring) record.retiring = true;
    return encodeValue("instance", record);
  }

  #write(
    k: KeyView,
    state: LifecycleState,
    now: number,
    reason?: string,
    lost = false,
    crashedBy?: string[],
  ): Write {
    const w = new Write();
    w.expect(k.key, k.modRevision);
    w.put(k.key, this.#record(k, state, now, reason, lost, crashedBy));
    const during = crashedBy ? ` during request(s) ${crashedBy.join(", ")}` : "";
    w.note(`${k.key}: ${k.record.state} -> ${state}${reason ? ` (${reason})` : ""}${during}`);
    return w;
  }

  /**
   * One instance key of this node: start what its command asks for, then make the record say what actually
   * runs. Level-triggered, so a write that failed (or a restart) is simply corrected at the next step.
   */
  #reconcile(
    k: KeyView,
    local: LocalInstance | undefined,
    kv: KvReader,
    mine: Map<string, KeyView>,
    now: number,
  ): { action?: ExecutorAction; write?: Write } {
    const state = k.record.state;
    if (local?.fenced) return {}; // stopped for lack of quorum: released first, then reported lost
    if (state === "FAILED") {
      // The leader gave up on it (stuck), or this node reported it: stop it here; the key stays until UNLOAD.
      const action = local && local.state !== "FAILED" ? this.#teardown(local) : undefined;
      return action ? { action } : {};
    }
    if (state === "UNLOAD" || state === "UNLOADING") {
      if (!local) {
        const w = new Write();
        w.expect(k.key, k.modRevision);
        w.delete(k.key);
        w.note(`${k.key}: unloaded, key removed`);
        return { write: w };
      }
      const action = this.#teardown(local);
      const write = state === "UNLOAD" && (action !== undefined || local.state === "UNLOADING")
        ? this.#write(k, "UNLOADING", now)
        : undefined;
      return { ...(action ? { action } : {}), ...(write ? { write } : {}) };
    }

    let action: ExecutorAction | undefined;
    if (state === "LOAD" && !local) {
      const instanceId = `${k.coordinates}/${k.n}`;
      local = {
        instanceId,
        key: k.key,
        coordinates: k.coordinates,
        n: k.n,
        createRevision: k.createRevision,
        state: "LOADING",
      };
      this.#local.set(k.key, local);
      this.#byId.set(instanceId, local);
      action = this.#start(local, "load", "LOADING");
    } else if (state === "ACTIVATE" && local?.state === "LOADED" && !local.busy) {
      const conflict = this.#routeConflict(kv, k);
      if (conflict) return { write: this.#write(k, "FAILED", now, conflict) };
      action = this.#start(local, "activate", "ACTIVATING");
    } else if (state === "DEACTIVATE" && local?.state === "ACTIVE" && !local.busy) {
      action = this.#start(local, "deactivate", "DEACTIVATING");
    }

    const serving = state === "ACTIVE" || state === "DEACTIVATE";
    if (!local) {
      const w = this.#write(
        k,
        "FAILED",
        now,
        `the instance is not running on ${this.self} (lost in a restart?)`,
        true,
      );
      if (serving) this.#withdraw(w, kv, k.coordinates, k.n, k.key, mine);
      return { write: w };
    }
    const reported = local.state;
    if (reported === state) return action ? { action } : {};
    if (reported === "ACTIVE") {
      const w = this.#write(k, "ACTIVE", now);
      const problem = this.#publish(w, kv, k, now);
      if (!problem) return { ...(action ? { action } : {}), write: w };
      // Serving without its routes would be wrong: fail it (the leader unloads and replaces it).
      local.state = "FAILED";
      local.reason = problem;
      return { write: this.#write(k, "FAILED", now, problem) };
    }
    const w = reported === "FAILED"
      ? this.#write(k, reported, now, local.reason ?? "failed", false, local.crashedBy)
      : this.#write(k, reported, now);
    if (serving) this.#withdraw(w, kv, k.coordinates, k.n, k.key, mine);
    return { ...(action ? { action } : {}), write: w };
  }

  /** Adds endpoint puts and route places for an instance going ACTIVE; returns a problem instead, if any. */
  #publish(w: Write, kv: KvReader, k: KeyView, now: number): string | undefined {
    const manifest = this.#manifest(kv, k.coordinates);
    if (!manifest) return `cannot publish endpoints: ${k.coordinates} has no artifact record`;
    const conflict = this.#routeConflict(kv, k);
    if (conflict) return conflict;
    for (const method of manifest.methods) {
      w.put(
        kvKeys.endpoint(k.coordinates, method, this.self, k.n),
        encodeValue("endpoint", { registeredAt: now }),
      );
    }
    for (const entry of manifest.routes?.entries ?? []) {
      const key = kvKeys.route(entry.httpMethod, entry.fullPath);
      const existing = kv.get(key);
      const record = existing ? this.#route(existing.value) : undefined;
      if (record?.nodes.includes(this.self) && record.method === entry.method) continue;
      const nodes = [...new Set([...(record?.nodes ?? []), this.self])].sort();
      w.expect(key, existing?.modRevision ?? 0);
      w.put(key, encodeValue("route", { slice: k.base, method: entry.method, nodes }));
    }
    return undefined;
  }

  /** Adds endpoint deletes and route-place removals for an instance that stops serving. */
  #withdraw(
    w: Write,
    kv: KvReader,
    coordinates: string,
    n: number,
    key: string,
    mine: Map<string, KeyView>,
  ): void {
    for (const entry of kv.range(kvPrefixes.endpointsOf(coordinates))) {
      const parsed = parseKeyMemo(entry.key);
      if (parsed.family === "endpoint" && parsed.node === this.self && parsed.n === n) w.delete(entry.key);
    }
    const manifest = this.#manifest(kv, coordinates);
    const base = baseOf(coordinates);
    for (const entry of manifest?.routes?.entries ?? []) {
      const routeKey = kvKeys.route(entry.httpMethod, entry.fullPath);
      const existing = kv.get(routeKey);
      const record = existing ? this.#route(existing.value) : undefined;
      if (!existing || !record || record.slice !== base || !record.nodes.includes(this.self)) continue;
      // Another instance on this node still serving the route keeps the node in it.
      const stillServed = [...mine.values()].some((other) =>
        other.key !== key && other.base === base && other.record.state === "ACTIVE" &&
        (this.#manifest(kv, other.coordinates)?.routes?.entries ?? []).some((e) =>
          e.httpMethod === entry.httpMethod && e.fullPath === entry.fullPath
        )
      );
      if (stillServed) continue;
      w.expect(routeKey, existing.modRevision);
      const nodes = record.nodes.filter((node) => node !== this.self);
      // A slice scaled to zero keeps its routes (served by no node) so a request can activate it again.
      if (nodes.length === 0 && !scaledToZero(kv, base)) w.delete(routeKey);
      else w.put(routeKey, encodeValue("route", { ...record, nodes }));
    }
  }

  /** A route of the manifest that another slice already serves. */
  #routeConflict(kv: KvReader, k: KeyView): string | undefined {
    const manifest = this.#manifest(kv, k.coordinates);
    for (const entry of manifest?.routes?.entries ?? []) {
      const existing = kv.get(kvKeys.route(entry.httpMethod, entry.fullPath));
      const record = existing ? this.#route(existing.value) : undefined;
      if (record && record.slice !== k.base && record.nodes.length > 0) {
        return `route ${entry.httpMethod} ${entry.fullPath} is already served by ${record.slice}`;
      }
    }
    return undefined;
  }

  #route(bytes: Uint8Array): RouteRecord | undefined {
    try {
      return decodeValueMemo("route", bytes);
    } catch {
      return undefined;
    }
  }
}

/** The slice's target asks for no instance and allows none (`min = 0`): scaled to zero, not undeployed. */
function scaledToZero(kv: KvReader, base: string): boolean {
  const entry = kv.get(kvKeys.target(base));
  if (!entry) return false;
  try {
    const target = decodeValueMemo("target", entry.value);
    return target.instances === 0 && target.min === 0;
  } catch {
    return false;
  }
}
