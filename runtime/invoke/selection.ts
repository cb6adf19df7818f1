/**
 * Endpoint selection: which instance serves one attempt of a call.
 *
 * 1. Only endpoints of a version the caller accepts: the exact version if one is named, else the versions in
 *    the caller's range (a slice calls `slice("g:a", "^1.0.0")`); HTTP requests accept every version.
 * 2. The version: while `routing/{g}:{a}` weighs two versions, the weighted choice (weights.ts); once a call
 *    has chosen, its retries stay with that version while it has untried instances.
 * 3. Instances not tried yet by this call come first: a retry goes to another instance (and so, after a node
 *    failure, another node). When every instance has been tried, they are all allowed again (the invoker backs
 *    off first), since an instance that refused (overloaded, being replaced) may serve a moment later.
 * 4. Local first: an instance on this node avoids a network hop; among local instances, and otherwise among
 *    remote ones, round-robin per slice and method (the order is the registry's, sorted by node).
 *
 * Pure: the counters are the only state; no clock, randomness or IO.
 */

import { type NodeId, parseVersionRange, satisfies, type VersionRange } from "../core/mod.ts";
import type { Endpoint } from "../deployment/mod.ts";
import { VersionChooser, type VersionWeightsRecord } from "./weights.ts";

export type { Endpoint } from "../deployment/mod.ts";

export interface SelectionInput {
  /** `group:artifact`. */
  slice: string;
  method: string;
  /** Live endpoints of the slice and method (any version), sorted by node. */
  candidates: readonly Endpoint[];
  /** Accept only this version. */
  version?: string;
  /** Accept only versions in this range (ignored when `version` is set). */
  range?: string;
  /** The slice's version weights, if any. */
  routing?: VersionWeightsRecord;
  /** Endpoint keys this call has already tried. */
  tried: ReadonlySet<string>;
  /** The version the call's first attempt chose. */
  version0?: string;
}

export interface Selection {
  endpoint: Endpoint;
  /** False when every eligible instance had been tried already. */
  fresh: boolean;
  /** How many instances were eligible (for error messages). */
  eligible: number;
}

export class EndpointSelector {
  readonly #self: NodeId;
  readonly #counters = new Map<string, number>();
  readonly #ranges = new Map<string, VersionRange | null>();
  readonly #accepts = new Map<string, boolean>();
  readonly #chooser = new VersionChooser();

  constructor(self: NodeId) {
    this.#self = self;
  }

  /** The endpoints `input` accepts by version (before weights and tries). */
  eligible(input: Pick<SelectionInput, "candidates" | "version" | "range">): readonly Endpoint[] {
    const { candidates, version, range } = input;
    if (version !== undefined) return candidates.filter((e) => e.version === version);
    if (range === undefined || range === "*") return candidates;
    return candidates.filter((e) => this.#inRange(e.version, range));
  }

  /** Picks the endpoint for one attempt, or undefined when no endpoint is eligible. */
  select(input: SelectionInput): Selection | undefined {
    const eligible = this.eligible(input);
    if (eligible.length === 0) return undefined;
    const untried = input.tried.size === 0 ? eligible : eligible.filter((e) => !input.tried.has(e.key));
    const fresh = untried.length > 0;
    const pool = fresh ? untried : eligible;
    const version = this.#version(input, pool);
    const ofVersion = version === undefined ? pool : pool.filter((e) => e.version === version);
    const endpoint = this.#localFirst(input, ofVersion.length > 0 ? ofVersion : pool);
    return { endpoint, fresh, eligible: eligible.length };
  }

  /** Drops weighting state of slices no longer weighted. */
  retainWeighted(slices: ReadonlySet<string>): void {
    this.#chooser.retain(slices);
  }

  #version(input: SelectionInput, pool: readonly Endpoint[]): string | undefined {
    const has = (version: string) => pool.some((e) => e.version === version);
    if (input.version0 !== undefined && has(input.version0)) return input.version0;
    if (!input.routing) return undefined;
    return this.#chooser.choose(input.slice, input.routing, has);
  }

  #localFirst(input: Pick<SelectionInput, "slice" | "method">, pool: readonly Endpoint[]): Endpoint {
    let local: Endpoint[] | undefined;
    for (const e of pool) {
      if (e.node === this.#self) (local ??= []).push(e);
    }
    // The round-robin key is built only when there is a choice to make (not for the lone local instance).
    if (local) {
      if (local.length === 1) return local[0];
      return local[this.#next(`${input.slice}/${input.method}/local`) % local.length];
    }
    return pool.length === 1 ? pool[0] : pool[this.#next(`${input.slice}/${input.method}`) % pool.length];
  }

  #next(key: string): number {
    const n = this.#counters.get(key) ?? 0;
    this.#counters.set(key, n + 1 >= Number.MAX_SAFE_INTEGER ? 0 : n + 1);
    return n;
  }

  #inRange(version: string, range: string): boolean {
    const cacheKey = `${range}\u0000${version}`;
    let accepted = this.#accepts.get(cacheKey);
    if (accepted === undefined) {
      let parsed = this.#ranges.get(range);
      if (parsed === undefined) {
        try {
          parsed = parseVersionRange(range);
        } catch {
          parsed = null; // A malformed range accepts nothing (manifests are validated; this is a guard).
        }
        this.#ranges.set(range, parsed);
      }
      accepted = parsed !== null && satisfies(version, parsed);
      if (this.#accepts.size > 10_000) this.#accepts.clear();
      this.#accepts.set(cacheKey, accepted);
    }
    return accepted;
  }
}
