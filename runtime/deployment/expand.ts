/**
 * Blueprint expansion: a blueprint lists the slices the operator wants; their manifests say which slices they
 * call (with version ranges), transitively. Expansion adds every called slice, picks its version, rejects
 * cycles, and orders the result for activation (every slice after the slices it calls).
 *
 * Version choice: a slice the blueprint lists runs the version listed, which must satisfy every range that
 * reaches it; any other slice runs the highest published version that satisfies every range that reaches it.
 * Ranges come from the versions chosen so far, so the choice is repeated until it no longer changes (a lower
 * version may call other slices than a higher one). Expansion is greedy and does not backtrack: when the
 * highest choice leads to ranges nothing satisfies, it reports them rather than trying lower versions.
 */

import { AetherError, baseOf, maxSatisfying, satisfies } from "../core/mod.ts";
import type { BlueprintRecord, BlueprintSlice } from "../model/mod.ts";
import type { ParsedBlueprint } from "./blueprint.ts";
import { type ArtifactCatalog, callsOf, type DeployManifest } from "./artifacts.ts";
import { formatPath, locate } from "./_toml_locate.ts";

export interface ExpandedBlueprint {
  id: string;
  /** In activation order: every slice after the slices it calls. */
  slices: BlueprintSlice[];
  /** For each slice (`group:artifact:version`), the slices it calls, as chosen. */
  calls: Record<string, string[]>;
  source: string;
}

/** A range that reached a slice, and who asked for it. */
interface Demand {
  range: string;
  /** `group:artifact:version` of the caller. */
  from: string;
  /** The caller's client name for the slice. */
  name: string;
}

const MAX_ROUNDS = 64;

export interface ExpandOptions {
  /**
   * The version a slice runs now, if it is deployed. A called slice the blueprint does not list keeps that
   * version when it satisfies every range, so publishing a blueprint does not move a slice other blueprints
   * share (which would be a 409) or upgrade it as a side effect.
   */
  deployed?: (base: string) => string | undefined;
}

/** Expands a parsed blueprint; throws AetherError("bad_request") naming what is missing, unsatisfiable or cyclic. */
export function expandBlueprint(
  blueprint: ParsedBlueprint,
  catalog: ArtifactCatalog,
  options: ExpandOptions = {},
): ExpandedBlueprint {
  const listed = new Map<string, { index: number; version: string }>();
  blueprint.slices.forEach((spec, index) => {
    listed.set(baseOf(spec.artifact), { index, version: spec.artifact.split(":")[2] });
  });
  const errors = new Errors(blueprint);
  for (const [base, { index, version }] of listed) {
    if (!catalog.manifest(`${base}:${version}`)) {
      const published = catalog.versions(base);
      errors.add(
        `${base}:${version} is not published` +
          (published.length ? ` (published versions: ${published.join(", ")})` : " (no version of it is)"),
        index,
      );
    }
  }
  errors.throwIfAny();

  let chosen = new Map<string, string>([...listed].map(([base, l]) => [base, l.version]));
  let reach: Reach | undefined;
  for (let round = 0;; round++) {
    if (round === MAX_ROUNDS) {
      throw new AetherError(
        "bad_request",
        `blueprint ${blueprint.id}: the versions of called slices did not settle after ${MAX_ROUNDS} rounds`,
      );
    }
    reach = gather(chosen, listed, catalog);
    errors.clear();
    const next = new Map<string, string>([...listed].map(([base, l]) => [base, l.version]));
    for (const [base, demands] of reach.demands) {
      const explicit = listed.get(base);
      if (explicit) {
        for (const d of demands) {
          if (!satisfies(explicit.version, d.range)) {
            errors.add(
              `${base}:${explicit.version} is listed, but ${d.from} calls ${base} (as "${d.name}") with range ` +
                `${d.range}, which it does not satisfy`,
              explicit.index,
            );
          }
        }
        continue;
      }
      const published = catalog.versions(base);
      const who = demands.map((d) => `${d.range} from ${d.from}${chainOf(reach!, d.from)}`).join(", ");
      // Located at the listed slice whose calls lead here.
      const at = listedIndexReaching(reach, listed, baseOf(demands[0].from));
      if (published.length === 0) {
        errors.add(`${base} is called (${who}) but no version of it is published`, at);
        continue;
      }
      const current = options.deployed?.(base);
      const keep = current !== undefined && published.includes(current) &&
        demands.every((d) => satisfies(current, d.range));
      const version = keep ? current : pickVersion(published, demands);
      if (version === undefined) {
        errors.add(
          `no published version of ${base} satisfies every range that reaches it: ${who}; ` +
            `published versions: ${published.join(", ")}`,
          at,
        );
        continue;
      }
      next.set(base, version);
    }
    if (sameChoice(next, chosen)) break;
    chosen = next;
  }
  errors.throwIfAny();

  const edges = new Map<string, string[]>();
  for (const [base, version] of chosen) {
    const manifest = catalog.manifest(`${base}:${version}`)!;
    edges.set(base, callsOf(manifest).map((c) => c.base).filter((b, i, all) => all.indexOf(b) === i));
  }
  const cycle = findCycle(edges, [...listed.keys()]);
  if (cycle) {
    const named = cycle.map((base) => `${base}:${chosen.get(base)}`).join(" → ");
    errors.add(
      `the slices call each other in a cycle: ${named}`,
      listedIndexReaching(reach, listed, cycle[0]),
    );
    errors.throwIfAny({ cycle: cycle.map((base) => `${base}:${chosen.get(base)}`) });
  }

  const order = activationOrder(edges, [...listed.keys()]);
  const slices: BlueprintSlice[] = order.map((base) => {
    const explicit = listed.get(base);
    const artifact = `${base}:${chosen.get(base)}`;
    if (!explicit) return { artifact, instances: 1, requires: [], transitive: true };
    const spec = blueprint.slices[explicit.index];
    const slice: BlueprintSlice = {
      artifact,
      instances: spec.instances,
      requires: [...spec.requires],
      transitive: false,
    };
    if (spec.min !== undefined) slice.min = spec.min;
    if (spec.max !== undefined) slice.max = spec.max;
    if (spec.rollout !== undefined) slice.rollout = spec.rollout;
    if (spec.minAvailable !== undefined) slice.minAvailable = spec.minAvailable;
    if (spec.placement !== undefined) slice.placement = spec.placement;
    return slice;
  });
  const calls: Record<string, string[]> = {};
  for (const base of order) {
    calls[`${base}:${chosen.get(base)}`] = edges.get(base)!.map((b) => `${b}:${chosen.get(b)}`);
  }
  return { id: blueprint.id, slices, calls, source: blueprint.source };
}

/** The record stored under `blueprints/{id}`. */
export function blueprintRecordOf(expanded: ExpandedBlueprint, publishedAt: number): BlueprintRecord {
  return { id: expanded.id, slices: expanded.slices, source: expanded.source, publishedAt };
}

function pickVersion(published: readonly string[], demands: Demand[]): string | undefined {
  // Highest first: the first version every range accepts.
  const candidates = [...published].reverse();
  if (demands.length === 1) return maxSatisfying(published, demands[0].range);
  return candidates.find((v) => demands.every((d) => satisfies(v, d.range)));
}

interface Reach {
  demands: Map<string, Demand[]>;
  /** For error messages: the first caller (coordinates) through which each slice was reached. */
  parent: Map<string, string>;
}

/** Follows the calls of the chosen versions from the listed slices, collecting the ranges that reach each slice. */
function gather(
  chosen: Map<string, string>,
  listed: Map<string, unknown>,
  catalog: ArtifactCatalog,
): Reach {
  const demands = new Map<string, Demand[]>();
  const parent = new Map<string, string>();
  const queue = [...listed.keys()];
  const visited = new Set(queue);
  for (let i = 0; i < queue.length; i++) {
    const base = queue[i];
    const version = chosen.get(base);
    if (version === undefined) continue; // not chosen yet: its calls are followed next round
    const from = `${base}:${version}`;
    const manifest: DeployManifest | undefined = catalog.manifest(from);
    if (!manifest) continue;
    for (const call of callsOf(manifest)) {
      const list = demands.get(call.base) ?? [];
      list.push({ range: call.range, from, name: call.name });
      demands.set(call.base, list);
      if (!visited.has(call.base)) {
        visited.add(call.base);
        parent.set(call.base, from);
        queue.push(call.base);
      }
    }
  }
  return { demands, parent };
}

/** ` (reached through a → b)` for a caller that the blueprint does not list itself. */
function chainOf(reach: Reach, from: string): string {
  const chain: string[] = [];
  let base = baseOf(from);
  while (reach.parent.has(base) && chain.length < 32) {
    const caller = reach.parent.get(base)!;
    chain.unshift(caller);
    base = baseOf(caller);
  }
  return chain.length ? ` (reached through ${chain.join(" → ")})` : "";
}

/** The index of the listed slice from which `base` was reached (itself when listed). */
function listedIndexReaching(
  reach: Reach | undefined,
  listed: Map<string, { index: number }>,
  base: string,
): number | undefined {
  let current = base;
  for (let hops = 0; hops < 64; hops++) {
    const entry = listed.get(current);
    if (entry) return entry.index;
    const caller = reach?.parent.get(current);
    if (!caller) return undefined;
    current = baseOf(caller);
  }
  return undefined;
}

function sameChoice(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** A cycle as a closed path (`[a, b, c, a]`), or undefined. Deterministic: roots and edges in given order. */
export function findCycle(edges: Map<string, string[]>, roots: string[]): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    state.set(node, "open");
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      const s = state.get(next);
      if (s === "open") return [...stack.slice(stack.indexOf(next)), next];
      if (s === undefined) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(node, "done");
    return undefined;
  };
  for (const root of [...roots, ...edges.keys()]) {
    if (!state.has(root)) {
      const found = visit(root);
      if (found) return found;
    }
  }
  return undefined;
}

/** Dependencies first: a depth-first post-order from the listed slices in the order they are listed. */
export function activationOrder(edges: Map<string, string[]>, roots: string[]): string[] {
  const done = new Set<string>();
  const order: string[] = [];
  const visit = (node: string) => {
    if (done.has(node)) return;
    done.add(node);
    for (const next of edges.get(node) ?? []) visit(next);
    order.push(node);
  };
  for (const root of roots) visit(root);
  return order;
}

/** Collects expansion problems; those about a listed slice carry its position in the TOML. */
class Errors {
  #list: { message: string; index?: number }[] = [];
  readonly #blueprint: ParsedBlueprint;

  constructor(blueprint: ParsedBlueprint) {
    this.#blueprint = blueprint;
  }

  add(message: string, index?: number): void {
    if (!this.#list.some((e) => e.message === message)) this.#list.push({ message, index });
  }

  clear(): void {
    this.#list = [];
  }

  throwIfAny(fields: Record<string, unknown> = {}): void {
    if (this.#list.length === 0) return;
    const positions = locate(this.#blueprint.source);
    const problems = this.#list.map(({ message, index }) => {
      if (index === undefined) return { field: "", message };
      const field = formatPath(["slices", index, "artifact"]);
      const at = positions.get(field)?.value ?? { line: 1, column: 1 };
      return { field, message, line: at.line, column: at.column };
    });
    const first = problems[0];
    const where = "line" in first ? `, line ${first.line}, column ${first.column}` : "";
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : "";
    const extra: Record<string, unknown> = { ...fields, problems };
    if (first.field) Object.assign(extra, { field: first.field, line: first.line, column: first.column });
    throw new AetherError(
      "bad_request",
      `blueprint ${this.#blueprint.id}${where}: ${first.message}${more}`,
      extra,
    );
  }
}
