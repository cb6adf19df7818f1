/**
 * The faults an operator injected into a running Forge (`aether forge partition|isolate|latency`), and what
 * they mean for each mesh link: cut, or delayed by some milliseconds. Pure: Forge applies the result to its
 * link proxies after every change.
 */

export type Fault =
  | { kind: "partition"; a: string; b: string }
  | { kind: "isolate"; node: string }
  | { kind: "latency"; a: string; b: string; ms: number };

export interface LinkFaults {
  partitioned: boolean;
  latencyMs: number;
}

/** Faults active at once; more is a script gone wrong, not a test of a cluster. */
export const MAX_FAULTS = 64;

/** A fault as one line: `partition n1 n2`, `isolate n3`, `latency n1 n2 200ms`. */
export function describeFault(fault: Fault): string {
  switch (fault.kind) {
    case "partition":
      return `partition ${fault.a} ${fault.b}`;
    case "isolate":
      return `isolate ${fault.node}`;
    case "latency":
      return `latency ${fault.a} ${fault.b} ${fault.ms}ms`;
  }
}

export class FaultSet {
  #faults: Fault[] = [];

  constructor(readonly members: readonly string[]) {}

  list(): Fault[] {
    return [...this.#faults];
  }

  /**
   * Adds a fault after checking it names members (and two different ones for a link). A latency fault on a
   * link replaces the previous one on that link; a fault already active is not added twice.
   */
  add(fault: Fault): void {
    const nodes = fault.kind === "isolate" ? [fault.node] : [fault.a, fault.b];
    for (const node of nodes) {
      if (!this.members.includes(node)) {
        throw new RangeError(`no member "${node}"; the members are ${this.members.join(", ")}`);
      }
    }
    if (fault.kind !== "isolate" && fault.a === fault.b) {
      throw new RangeError(`${fault.kind}: a link joins two different members, not ${fault.a} and itself`);
    }
    const key = linkKey(nodes[0], nodes[1] ?? "");
    const same = (f: Fault) =>
      f.kind === fault.kind &&
      (f.kind === "isolate" ? f.node === nodes[0] : linkKey(f.a, f.b) === key);
    const kept = this.#faults.filter((f) => !same(f));
    if (kept.length >= MAX_FAULTS) throw new RangeError(`at most ${MAX_FAULTS} faults at once; heal first`);
    this.#faults = [...kept, fault];
  }

  /** Removes every fault; returns how many there were. */
  clear(): number {
    const count = this.#faults.length;
    this.#faults = [];
    return count;
  }

  /** What the faults do to the link between `a` and `b` (either order). */
  link(a: string, b: string): LinkFaults {
    const key = linkKey(a, b);
    let partitioned = false;
    let latencyMs = 0;
    for (const f of this.#faults) {
      if (f.kind === "isolate" && (f.node === a || f.node === b)) partitioned = true;
      if (f.kind === "partition" && linkKey(f.a, f.b) === key) partitioned = true;
      if (f.kind === "latency" && linkKey(f.a, f.b) === key) latencyMs = Math.max(latencyMs, f.ms);
    }
    return { partitioned, latencyMs };
  }
}

export function linkKey(a: string, b: string): string {
  return a < b ? `${a}-${b}` : `${b}-${a}`;
}
