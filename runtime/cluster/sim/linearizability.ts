/**
 * Linearizability checking of a concurrent history, after Wing & Gong with Lowe's memoization, as Porcupine
 * does it: depth-first search for an order of operations that respects real time and the sequential model,
 * caching (set of linearized operations, model state) pairs already explored.
 *
 * The KV history is split per key (P-compositionality: a history is linearizable iff every key's sub-history
 * is), which keeps each search small. Operations whose outcome is unknown (timed out, dropped, the server
 * crashed) have return time +infinity: they may take effect at any point after their call, or never.
 */

export interface Model<S, I, O> {
  init: S;
  /** The state after `input` produced `output` (undefined output: unknown, any output is fine); undefined: impossible. */
  step(state: S, input: I, output: O | undefined): S | undefined;
  /** A string that is equal for equal states (memoization key). */
  stateKey(state: S): string;
}

export interface Operation<I, O> {
  input: I;
  /** undefined when the outcome is unknown. */
  output?: O;
  callMs: number;
  /** Infinity when the outcome is unknown. */
  returnMs: number;
}

interface Entry {
  op: number;
  isCall: boolean;
  timeMs: number;
  match?: Entry;
  prev?: Entry;
  next?: Entry;
}

/** Searches for a linearization. `budget` bounds the search steps; exceeding it throws (a result is not known). */
export function isLinearizable<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  budget = 5_000_000,
): boolean {
  const head = buildEntries(ops);
  let remainingKnown = ops.filter((op) => op.returnMs !== Infinity).length;
  const linearized = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  const cache = new Set<string>();
  const stack: { entry: Entry; state: S }[] = [];
  let state = model.init;
  let entry = head.next;
  let steps = 0;
  while (entry !== undefined && remainingKnown > 0) {
    if (++steps > budget) throw new Error(`linearizability search exceeded ${budget} steps`);
    if (entry.isCall) {
      const op = ops[entry.op];
      const next = model.step(state, op.input, op.output);
      if (next !== undefined) {
        flip(linearized, entry.op);
        const key = `${linearized.join(",")}|${model.stateKey(next)}`;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ entry, state });
          state = next;
          if (op.returnMs !== Infinity) remainingKnown--;
          lift(entry);
          entry = head.next;
          continue;
        }
        flip(linearized, entry.op);
      }
      entry = entry.next;
    } else {
      // A return reached before its call was linearized: undo the last choice.
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      flip(linearized, top.entry.op);
      if (ops[top.entry.op].returnMs !== Infinity) remainingKnown++;
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  // Every operation with a known outcome is placed; the unknown ones can all take effect last, or never.
  return remainingKnown === 0;
}

function flip(bits: Uint32Array, index: number): void {
  bits[index >>> 5] ^= 1 << (index & 31);
}

/** A doubly linked list of call and return entries in time order, behind a sentinel head. */
function buildEntries<I, O>(ops: Operation<I, O>[]): Entry {
  const entries: Entry[] = [];
  ops.forEach((op, i) => {
    if (!(op.returnMs >= op.callMs)) throw new Error(`operation ${i} returns before its call`);
    const call: Entry = { op: i, isCall: true, timeMs: op.callMs };
    const ret: Entry = { op: i, isCall: false, timeMs: op.returnMs };
    call.match = ret;
    entries.push(call, ret);
  });
  // At equal times calls come first: such operations count as concurrent, the permissive reading.
  entries.sort((a, b) => a.timeMs - b.timeMs || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Entry = { op: -1, isCall: false, timeMs: -Infinity };
  let prev = head;
  for (const e of entries) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  return head;
}

function lift(call: Entry): void {
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

// ---------------------------------------------------------------- the KV model (one key)

/** Per key: the current value, null when absent. Values are unique per write in the histories checked. */
export type KvInput =
  | { kind: "put"; value: string }
  | { kind: "delete" }
  /** Compare-and-set: `expected` is the value the key must hold (null: must be absent). */
  | { kind: "cas"; expected: string | null; value: string }
  | { kind: "get" };

export type KvOutput = { ok: boolean; value?: string | null };

export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: null,
  step(state, input, output) {
    switch (input.kind) {
      case "put":
        return input.value;
      case "delete":
        return null;
      case "cas": {
        const holds = state === input.expected;
        if (output === undefined) return holds ? input.value : state;
        if (output.ok !== holds) return undefined;
        return holds ? input.value : state;
      }
      case "get":
        if (output === undefined) return state;
        return output.value === state ? state : undefined;
    }
  },
  stateKey: (state) => state === null ? "-" : `=${state}`,
};

export interface KvOperation extends Operation<KvInput, KvOutput> {
  key: string;
  /** The store revision a completed write produced (for the real-time revision-order check). */
  revision?: number;
}

export type CheckResult = { ok: true } | { ok: false; problem: string };

/** Checks a KV history key by key. */
export function checkKvHistory(ops: KvOperation[]): CheckResult {
  const byKey = new Map<string, KvOperation[]>();
  for (const op of ops) {
    // A read without a result tells nothing.
    if (op.input.kind === "get" && op.output === undefined) continue;
    let list = byKey.get(op.key);
    if (!list) byKey.set(op.key, list = []);
    list.push(op);
  }
  for (const [key, list] of [...byKey].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
    if (!isLinearizable(kvModel, list)) {
      return { ok: false, problem: `the history of key "${key}" is not linearizable:\n${describe(list)}` };
    }
  }
  return checkRevisionOrder(ops);
}

/** Writes that completed one after the other in real time must have increasing revisions. */
export function checkRevisionOrder(ops: KvOperation[]): CheckResult {
  const writes = ops.filter((op) => op.revision !== undefined && op.returnMs !== Infinity);
  const byCall = [...writes].sort((a, b) => a.callMs - b.callMs);
  const byReturn = [...writes].sort((a, b) => a.returnMs - b.returnMs);
  let highest: KvOperation | undefined;
  let r = 0;
  for (const op of byCall) {
    while (r < byReturn.length && byReturn[r].returnMs < op.callMs) {
      if (!highest || byReturn[r].revision! > highest.revision!) highest = byReturn[r];
      r++;
    }
    if (highest && op.revision! <= highest.revision!) {
      return {
        ok: false,
        problem: `write revisions go back in real time: ${show(highest)} returned before ${
          show(op)
        } was called`,
      };
    }
  }
  return { ok: true };
}

function show(op: KvOperation): string {
  const out = op.output === undefined ? "?" : JSON.stringify(op.output);
  const ret = op.returnMs === Infinity ? "inf" : String(op.returnMs);
  return `${op.key} ${JSON.stringify(op.input)} -> ${out} [${op.callMs}, ${ret}]` +
    (op.revision === undefined ? "" : ` rev ${op.revision}`);
}

function describe(ops: KvOperation[]): string {
  return [...ops].sort((a, b) => a.callMs - b.callMs).map((op) => `  ${show(op)}`).join("\n");
}
