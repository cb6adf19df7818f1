/**
 * Desired state, as the management API changes it: every operation here reads the current state through a
 * `KvReader`, decides, and returns one KV transaction plus a plan that says what it changes. The transaction
 * compares the modRevision of every key it read, so applying it after someone else changed one of them fails
 * (`succeeded: false`) instead of overwriting their change; the API then reads again and retries or reports 409.
 * `?dryRun=true` returns the plan without submitting the command.
 *
 * Ownership: `targets/{g}:{a}` names the blueprints that want the slice (`owners`). A slice shared by two
 * blueprints stays while either owns it; deleting a blueprint removes only targets no other blueprint owns. A
 * directly deployed slice has no owners; a blueprint that lists it takes it over (and removes it when deleted).
 *
 * Shared slices: blueprints that share a slice must agree on its version (otherwise 409 naming both); its
 * instance count is the largest any of them asks for. A blueprint's own re-apply sets the count it lists.
 */

import { AetherError, baseOf, parseArtifactBase, parseCoordinates, satisfies } from "../core/mod.ts";
import type { KvCommand, KvCompare, KvOp } from "../kv/mod.ts";
import {
  type BlueprintRecord,
  type BlueprintSlice,
  budgetCount,
  decodeValue,
  encodeValue,
  isRolloutFinished,
  KEY_PREFIXES,
  kvKeys,
  newRolloutRecord,
  type RolloutRecord,
  type TargetRecord,
} from "../model/mod.ts";
import { blueprintRecordOf, expandBlueprint, type ExpandedBlueprint } from "./expand.ts";
import { callsOf } from "./artifacts.ts";
import { catalogFromKv, type KvReader } from "./view.ts";
import { MAX_INSTANCES, parseBlueprint } from "./blueprint.ts";

export type TargetAction = "create" | "update" | "keep" | "release" | "remove";

export interface TargetSummary {
  version: string;
  instances: number;
  owners: string[];
}

export interface TargetPlanEntry {
  /** `group:artifact`. */
  slice: string;
  action: TargetAction;
  from?: TargetSummary;
  to?: TargetSummary;
  /** The version change goes through a rollout (the blueprint slice's `rollout`): `canary to 1.1.0`. */
  rollout?: string;
}

export interface BlueprintPlan {
  blueprint: string;
  action: "create" | "update" | "delete";
  /** The expanded slices, in activation order (for a delete: the slices the blueprint had). */
  slices: BlueprintSlice[];
  /** What happens to each target the operation touches, by slice. */
  targets: TargetPlanEntry[];
}

export interface Planned<P> {
  plan: P;
  command: KvCommand;
}

/** Reads a record; undefined when absent. A stored record that does not decode is a 500: the store is damaged. */
function read<F extends "target" | "blueprint">(
  kv: KvReader,
  family: F,
  key: string,
): { value: F extends "target" ? TargetRecord : BlueprintRecord; modRevision: number } | undefined {
  const entry = kv.get(key);
  if (!entry) return undefined;
  try {
    return {
      value: decodeValue(family, entry.value, `value of "${key}"`) as never,
      modRevision: entry.modRevision,
    };
  } catch (e) {
    throw new AetherError("internal", `stored ${family} is damaged: ${(e as Error).message}`);
  }
}

class TxnBuilder {
  readonly #compare = new Map<string, number>();
  readonly #ops: KvOp[] = [];

  /** The key must still be at `modRevision` (0: still absent) when the transaction applies. */
  expect(key: string, modRevision: number): void {
    this.#compare.set(key, modRevision);
  }

  put<F extends "target" | "blueprint" | "rollout">(
    key: string,
    family: F,
    value: F extends "target" ? TargetRecord : F extends "rollout" ? RolloutRecord : BlueprintRecord,
  ) {
    this.#ops.push({ op: "put", key, value: encodeValue(family, value as never) });
  }

  delete(key: string): void {
    this.#ops.push({ op: "delete", key });
  }

  build(): KvCommand {
    const compare: KvCompare[] = [...this.#compare].map(([key, modRevision]) => ({ key, modRevision }));
    return { type: "txn", compare, success: this.#ops, failure: [] };
  }
}

function summary(t: TargetRecord): TargetSummary {
  return { version: t.version, instances: t.instances, owners: [...t.owners] };
}

function sameTarget(a: TargetRecord, b: TargetRecord): boolean {
  return a.version === b.version && a.instances === b.instances && a.min === b.min && a.max === b.max &&
    a.minAvailable === b.minAvailable &&
    JSON.stringify(a.placement) === JSON.stringify(b.placement) &&
    a.owners.join() === b.owners.join();
}

function withBounds(target: TargetRecord, min: number | undefined, max: number | undefined): TargetRecord {
  const out: TargetRecord = { ...target };
  delete out.min;
  delete out.max;
  if (min !== undefined) out.min = min;
  if (max !== undefined) out.max = max;
  return out;
}

/**
 * A blueprint changes a slice's version and asks for a rollout: the rollout record (the leader drives it), or
 * nothing new when an unfinished rollout already goes to that version. 409 while one goes elsewhere.
 */
function startRollout(
  kv: KvReader,
  txn: TxnBuilder,
  r: {
    base: string;
    stable: string;
    version: string;
    next: TargetRecord;
    slice: BlueprintSlice;
    nowMs: number;
  },
): string {
  const key = kvKeys.rollout(r.base);
  const entry = kv.get(key);
  txn.expect(key, entry?.modRevision ?? 0);
  const spec = r.slice.rollout!;
  if (entry) {
    const current = decodeValue("rollout", entry.value);
    if (!isRolloutFinished(current.phase)) {
      if (current.newVersion === r.version) return `${current.strategy} to ${r.version} (under way)`;
      throw new AetherError(
        "conflict",
        `${r.base} has a ${current.strategy} rollout to ${current.newVersion} under way; abort it before ` +
          `rolling out ${r.version}`,
        { slice: r.base },
      );
    }
  }
  const record = newRolloutRecord(spec, {
    stableVersion: r.stable,
    newVersion: r.version,
    instances: r.next.instances,
    nowMs: r.nowMs,
  });
  txn.put(key, "rollout", record);
  return `${spec.strategy} to ${r.version}`;
}

/**
 * Publishing (or re-publishing) an expanded blueprint: the blueprint record and every target it owns, in one
 * transaction. Throws 409 when a slice it wants is owned by another blueprint at another version.
 */
export function planBlueprintApply(
  kv: KvReader,
  expanded: ExpandedBlueprint,
  nowMs: number,
): Planned<BlueprintPlan> {
  const id = expanded.id;
  const blueprintKey = kvKeys.blueprint(id);
  const previous = read(kv, "blueprint", blueprintKey);
  const txn = new TxnBuilder();
  txn.expect(blueprintKey, previous?.modRevision ?? 0);
  const entries: TargetPlanEntry[] = [];
  const wanted = new Set<string>();

  for (const slice of expanded.slices) {
    const { version } = parseCoordinates(slice.artifact);
    const base = baseOf(slice.artifact);
    wanted.add(base);
    const key = kvKeys.target(base);
    const current = read(kv, "target", key);
    txn.expect(key, current?.modRevision ?? 0);
    if (!current) {
      const created = withBounds(
        { version, instances: slice.instances, owners: [id], updatedAt: nowMs },
        slice.min,
        slice.max,
      );
      if (slice.minAvailable !== undefined) created.minAvailable = slice.minAvailable;
      if (slice.placement !== undefined) created.placement = slice.placement;
      txn.put(key, "target", created);
      entries.push({ slice: base, action: "create", to: summary(created) });
      continue;
    }
    const t = current.value;
    const others = t.owners.filter((o) => o !== id);
    if (t.version !== version && others.length > 0) {
      throw new AetherError(
        "conflict",
        `blueprint ${id} wants ${base}:${version}, but ${base} runs ${t.version} for blueprint(s) ` +
          `${others.join(", ")}; blueprints that share a slice must agree on its version`,
        { slice: base, version: t.version, owners: others },
      );
    }
    const instances = slice.transitive
      ? t.instances
      : others.length > 0
      ? Math.max(t.instances, slice.instances)
      : slice.instances;
    const next = withBounds(
      { ...t, version, instances, owners: [...new Set([...t.owners, id])].sort(), updatedAt: nowMs },
      // A listed slice takes the blueprint's bounds; a shared one keeps the other owners' unless it sets its own.
      slice.transitive ? t.min : slice.min ?? (others.length > 0 ? t.min : undefined),
      slice.transitive ? t.max : slice.max ?? (others.length > 0 ? t.max : undefined),
    );
    // Bounds from another owner may not hold the new count; the blueprint's own bounds win.
    if (
      (next.min !== undefined && next.instances < next.min) ||
      (next.max !== undefined && next.instances > next.max)
    ) {
      delete next.min;
      delete next.max;
    }
    if (t.version !== version) delete next.backoff;
    // A listed slice takes the blueprint's budget (none: none); a transitive one keeps what it had.
    if (!slice.transitive) {
      if (slice.minAvailable !== undefined) next.minAvailable = slice.minAvailable;
      else if (others.length === 0) delete next.minAvailable;
      // The same for placement rules.
      if (slice.placement !== undefined) next.placement = slice.placement;
      else if (others.length === 0) delete next.placement;
    }
    const rollout = t.version !== version && slice.rollout
      ? startRollout(kv, txn, { base, stable: t.version, version, next, slice, nowMs })
      : undefined;
    if (rollout !== undefined) {
      // The rollout moves the target to the new version when it succeeds (runtime/control/rollout.ts).
      next.version = t.version;
      if (t.backoff) next.backoff = t.backoff;
      if (!sameTarget(t, next)) txn.put(key, "target", next);
      entries.push({ slice: base, action: "update", from: summary(t), to: summary(next), rollout });
      continue;
    }
    if (sameTarget(t, next)) {
      entries.push({ slice: base, action: "keep", from: summary(t), to: summary(t) });
      continue;
    }
    txn.put(key, "target", next);
    entries.push({ slice: base, action: "update", from: summary(t), to: summary(next) });
  }

  for (const slice of previous?.value.slices ?? []) {
    const base = baseOf(slice.artifact);
    if (!wanted.has(base)) entries.push(release(kv, txn, base, id, nowMs));
  }
  txn.put(blueprintKey, "blueprint", blueprintRecordOf(expanded, nowMs));
  return {
    plan: {
      blueprint: id,
      action: previous ? "update" : "create",
      slices: expanded.slices,
      targets: entries,
    },
    command: txn.build(),
  };
}

/** Parses, expands (against the artifacts published in `kv`) and plans a blueprint: the whole of `POST /blueprints`. */
export function planBlueprintSource(
  kv: KvReader,
  source: string,
  nowMs: number,
): Planned<BlueprintPlan> & { expanded: ExpandedBlueprint } {
  const targets = readTargets(kv);
  const expanded = expandBlueprint(parseBlueprint(source), catalogFromKv(kv), {
    deployed: (base) => targets.get(base)?.version,
  });
  return { ...planBlueprintApply(kv, expanded, nowMs), expanded };
}

/** Drops `blueprint` from the owners of `base`; removes the target when no owner remains. */
function release(
  kv: KvReader,
  txn: TxnBuilder,
  base: string,
  blueprint: string,
  nowMs: number,
): TargetPlanEntry {
  const key = kvKeys.target(base);
  const current = read(kv, "target", key);
  if (!current || !current.value.owners.includes(blueprint)) {
    if (current) txn.expect(key, current.modRevision);
    return { slice: base, action: "keep", ...(current ? { from: summary(current.value) } : {}) };
  }
  txn.expect(key, current.modRevision);
  const owners = current.value.owners.filter((o) => o !== blueprint);
  if (owners.length === 0) {
    txn.delete(key);
    return { slice: base, action: "remove", from: summary(current.value) };
  }
  const next = { ...current.value, owners, updatedAt: nowMs };
  txn.put(key, "target", next);
  return { slice: base, action: "release", from: summary(current.value), to: summary(next) };
}

/** Deleting a blueprint: its record, and every target only it owns. 404 when there is no such blueprint. */
export function planBlueprintDelete(kv: KvReader, id: string, nowMs: number): Planned<BlueprintPlan> {
  const key = kvKeys.blueprint(id);
  const current = read(kv, "blueprint", key);
  if (!current) throw new AetherError("not_found", `there is no blueprint ${id}`);
  const txn = new TxnBuilder();
  txn.expect(key, current.modRevision);
  const entries: TargetPlanEntry[] = [];
  const bases = new Set(current.value.slices.map((s) => baseOf(s.artifact)));
  // A target may name the blueprint without the record listing it (an older version of the blueprint).
  for (const entry of kv.range(KEY_PREFIXES.targets)) {
    const base = entry.key.slice(KEY_PREFIXES.targets.length);
    if (!bases.has(base) && read(kv, "target", entry.key)?.value.owners.includes(id)) bases.add(base);
  }
  for (const base of [...bases].sort()) entries.push(release(kv, txn, base, id, nowMs));
  txn.delete(key);
  return {
    plan: { blueprint: id, action: "delete", slices: current.value.slices, targets: entries },
    command: txn.build(),
  };
}

export interface SlicePlan {
  slice: string;
  entry: TargetPlanEntry;
  /** Slices the new version calls that have no target yet (its instances will wait in LOADED for them). */
  missingCalls: string[];
  /** Deployed slices whose current version calls this one (for undeploy: they lose a dependency). */
  callers: string[];
}

function checkInstances(instances: number, where: string): void {
  if (!Number.isSafeInteger(instances) || instances < 0 || instances > MAX_INSTANCES) {
    throw new AetherError(
      "bad_request",
      `${where}: instances must be an integer from 0 to ${MAX_INSTANCES}, got ${instances}`,
      {
        field: "instances",
      },
    );
  }
}

/** Deploys one artifact directly (or moves a deployed slice to another version). 404 when not published. */
export function planDeploy(
  kv: KvReader,
  coordinates: string,
  instances: number,
  nowMs: number,
): Planned<SlicePlan> {
  const c = parseCoordinates(coordinates, "deploy: artifact");
  checkInstances(instances, "deploy");
  const base = `${c.group}:${c.artifact}`;
  const catalog = catalogFromKv(kv);
  const manifest = catalog.manifest(coordinates);
  if (!manifest) {
    throw new AetherError("not_found", `deploy: ${coordinates} is not published`, { field: "artifact" });
  }
  const key = kvKeys.target(base);
  const current = read(kv, "target", key);
  const txn = new TxnBuilder();
  txn.expect(key, current?.modRevision ?? 0);
  const next: TargetRecord = current
    ? { ...current.value, version: c.version, instances, updatedAt: nowMs }
    : { version: c.version, instances, owners: [], updatedAt: nowMs };
  checkBounds(next, "deploy");
  if (current?.value.version !== c.version) delete next.backoff;
  txn.put(key, "target", next);
  const targets = readTargets(kv);
  const missingCalls = callsOf(manifest)
    .filter((call) => {
      const t = targets.get(call.base);
      return !t || !satisfies(t.version, call.range);
    })
    .map((call) => `${call.base} ${call.range}`);
  return {
    plan: {
      slice: base,
      entry: {
        slice: base,
        action: current ? "update" : "create",
        ...(current ? { from: summary(current.value) } : {}),
        to: summary(next),
      },
      missingCalls,
      callers: callersOf(kv, base),
    },
    command: txn.build(),
  };
}

/** Changes the instance count of a deployed slice; 404 when it is not deployed, 400 outside its min/max. */
export function planScale(kv: KvReader, slice: string, instances: number, nowMs: number): Planned<SlicePlan> {
  const base = baseText(slice, "scale");
  checkInstances(instances, "scale");
  const key = kvKeys.target(base);
  const current = read(kv, "target", key);
  if (!current) throw new AetherError("not_found", `scale: ${base} is not deployed`, { field: "artifact" });
  const next = { ...current.value, instances, updatedAt: nowMs };
  checkBounds(next, "scale");
  const txn = new TxnBuilder();
  txn.expect(key, current.modRevision);
  txn.put(key, "target", next);
  return {
    plan: {
      slice: base,
      entry: { slice: base, action: "update", from: summary(current.value), to: summary(next) },
      missingCalls: [],
      callers: [],
    },
    command: txn.build(),
  };
}

/**
 * Undeploys a directly deployed slice. 404 when not deployed; 409 when a blueprint owns it (delete the
 * blueprint instead). Slices that call it keep running (see cluster_manager.ts); `callers` names them.
 */
export function planUndeploy(kv: KvReader, slice: string): Planned<SlicePlan> {
  const base = baseText(slice, "undeploy");
  const key = kvKeys.target(base);
  const current = read(kv, "target", key);
  if (!current) {
    throw new AetherError("not_found", `undeploy: ${base} is not deployed`, { field: "artifact" });
  }
  if (current.value.owners.length > 0) {
    throw new AetherError(
      "conflict",
      `undeploy: ${base} belongs to blueprint(s) ${current.value.owners.join(", ")}; delete the blueprint ` +
        `(or apply it without the slice) instead`,
      { slice: base, owners: current.value.owners },
    );
  }
  const txn = new TxnBuilder();
  txn.expect(key, current.modRevision);
  txn.delete(key);
  return {
    plan: {
      slice: base,
      entry: { slice: base, action: "remove", from: summary(current.value) },
      missingCalls: [],
      callers: callersOf(kv, base),
    },
    command: txn.build(),
  };
}

function baseText(slice: string, where: string): string {
  // Accept `g:a` or `g:a:v` (the version is ignored: a slice has one target).
  const parts = typeof slice === "string" ? slice.split(":") : [];
  const base = parts.length === 3 ? baseOf(slice) : slice;
  const parsed = parseArtifactBase(base, `${where}: artifact`);
  return `${parsed.group}:${parsed.artifact}`;
}

function checkBounds(t: TargetRecord, where: string): void {
  if (t.min !== undefined && t.instances < t.min) {
    throw new AetherError(
      "bad_request",
      `${where}: ${t.instances} instances is below the slice's min (${t.min})`,
      {
        field: "instances",
      },
    );
  }
  if (t.max !== undefined && t.instances > t.max) {
    throw new AetherError(
      "bad_request",
      `${where}: ${t.instances} instances is above the slice's max (${t.max})`,
      {
        field: "instances",
      },
    );
  }
}

function readTargets(kv: KvReader): Map<string, TargetRecord> {
  const out = new Map<string, TargetRecord>();
  for (const entry of kv.range(KEY_PREFIXES.targets)) {
    const t = read(kv, "target", entry.key);
    if (t) out.set(entry.key.slice(KEY_PREFIXES.targets.length), t.value);
  }
  return out;
}

/** Deployed slices (`g:a:v` of their target version) whose manifest calls `base`. */
/** Call chains shown at most in a refusal (the callers themselves are all named). */
const MAX_CHAINS_SHOWN = 10;
/** How far up the call graph a chain is followed. */
const MAX_CHAIN_DEPTH = 8;

/**
 * Dependency protection: undeploying `base`, or scaling it to zero, is refused (409) while slices with ACTIVE
 * instances call it; the error names them and the call chains that reach it (`shop:web:1.0.0 →
 * shop:orders:1.0.0 → shop:db`). The API skips this with `?force=true`.
 */
export function protectDependents(kv: KvReader, base: string, what: "undeploy" | "scale to 0"): void {
  const active = new Set<string>();
  for (const entry of kv.range(KEY_PREFIXES.instances)) {
    const coordinates = entry.key.split("/")[2];
    if (active.has(coordinates)) continue;
    try {
      if (decodeValue("instance", entry.value).state === "ACTIVE") active.add(coordinates);
    } catch {
      continue;
    }
  }
  const activeCallersOf = (b: string) => callersOf(kv, b).filter((c) => active.has(c));
  const callers = activeCallersOf(base);
  if (callers.length === 0) return;
  const chains: string[] = [];
  const walk = (chain: string[], depth: number) => {
    if (chains.length >= MAX_CHAINS_SHOWN) return;
    const top = chain[0];
    const above = depth < MAX_CHAIN_DEPTH
      ? activeCallersOf(baseOf(top)).filter((c) => !chain.includes(c))
      : [];
    if (above.length === 0) chains.push(chain.join(" → "));
    for (const caller of above) walk([caller, ...chain], depth + 1);
  };
  for (const caller of callers) walk([caller, base], 1);
  throw new AetherError(
    "conflict",
    `${what}: ${base} is called by ACTIVE slice(s) ${callers.join(", ")} (${chains.join("; ")}); ` +
      `their calls would fail. Undeploy them first, or pass --force (?force=true)`,
    { slice: base, callers, chains },
  );
}

/**
 * Disruption budget: scaling `base` below its `minAvailable` is refused (409) naming the budget; the API skips
 * this with `?force=true`. (The autoscaling controller keeps within min/max; an operator sets the budget.)
 */
export function protectBudget(kv: KvReader, base: string, instances: number): void {
  const current = read(kv, "target", kvKeys.target(base));
  if (!current?.value.minAvailable) return;
  const budget = budgetCount(current.value.minAvailable, current.value.instances);
  if (instances >= budget) return;
  throw new AetherError(
    "conflict",
    `scale: ${base} has a disruption budget of minAvailable ${current.value.minAvailable} ` +
      `(${budget} of ${current.value.instances} instances); ${instances} would break it. Pass --force ` +
      `(?force=true) to scale anyway`,
    { slice: base, minAvailable: current.value.minAvailable },
  );
}

function callersOf(kv: KvReader, base: string): string[] {
  const catalog = catalogFromKv(kv);
  const out: string[] = [];
  for (const [caller, t] of readTargets(kv)) {
    const manifest = catalog.manifest(`${caller}:${t.version}`);
    if (manifest && callsOf(manifest).some((c) => c.base === base)) out.push(`${caller}:${t.version}`);
  }
  return out;
}
