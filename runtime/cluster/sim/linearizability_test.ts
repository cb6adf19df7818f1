import assert from "node:assert/strict";
import { Rng } from "../../core/mod.ts";
import {
  checkKvHistory,
  checkRevisionOrder,
  type KvInput,
  type KvOperation,
  type KvOutput,
} from "./linearizability.ts";

function op(
  key: string,
  input: KvInput,
  output: KvOutput | undefined,
  callMs: number,
  returnMs: number,
  revision?: number,
): KvOperation {
  return { key, input, output, callMs, returnMs, revision };
}

const put = (value: string): KvInput => ({ kind: "put", value });
const get: KvInput = { kind: "get" };
const del: KvInput = { kind: "delete" };
const cas = (expected: string | null, value: string): KvInput => ({ kind: "cas", expected, value });
const ok: KvOutput = { ok: true };
const read = (value: string | null): KvOutput => ({ ok: true, value });

function linearizable(ops: KvOperation[]): boolean {
  return checkKvHistory(ops).ok;
}

Deno.test("sequential history that follows the model is linearizable", () => {
  assert.ok(linearizable([
    op("k", get, read(null), 0, 1),
    op("k", put("a"), ok, 2, 3),
    op("k", get, read("a"), 4, 5),
    op("k", cas("a", "b"), ok, 6, 7),
    op("k", cas("a", "c"), { ok: false }, 8, 9),
    op("k", get, read("b"), 10, 11),
    op("k", del, ok, 12, 13),
    op("k", get, read(null), 14, 15),
  ]));
});

Deno.test("a stale read after a completed write is rejected", () => {
  const result = checkKvHistory([
    op("k", put("a"), ok, 0, 1),
    op("k", put("b"), ok, 2, 3),
    op("k", get, read("a"), 4, 5),
  ]);
  assert.equal(result.ok, false);
  assert.match(result.ok ? "" : result.problem, /key "k" is not linearizable/);
});

Deno.test("a lost acknowledged write is rejected", () => {
  assert.equal(linearizable([op("k", put("a"), ok, 0, 1), op("k", get, read(null), 2, 3)]), false);
});

Deno.test("a read concurrent with a write may see either value, but reads cannot go back", () => {
  assert.ok(linearizable([op("k", put("a"), ok, 0, 10), op("k", get, read(null), 1, 2)]));
  assert.ok(linearizable([op("k", put("a"), ok, 0, 10), op("k", get, read("a"), 1, 2)]));
  assert.equal(
    linearizable([
      op("k", put("a"), ok, 0, 10),
      op("k", get, read("a"), 1, 2),
      op("k", get, read(null), 3, 4),
    ]),
    false,
  );
});

Deno.test("compare-and-set must succeed exactly when the expected value is there", () => {
  assert.equal(
    linearizable([op("k", put("a"), ok, 0, 1), op("k", cas("a", "b"), { ok: false }, 2, 3)]),
    false,
  );
  assert.equal(linearizable([op("k", put("a"), ok, 0, 1), op("k", cas("x", "b"), ok, 2, 3)]), false);
  assert.ok(linearizable([op("k", cas(null, "a"), ok, 0, 1), op("k", cas(null, "b"), { ok: false }, 2, 3)]));
});

Deno.test("an operation with unknown outcome may take effect late, once, or never", () => {
  const unknownPut = op("k", put("a"), undefined, 0, Infinity);
  assert.ok(linearizable([unknownPut, op("k", get, read(null), 5, 6)]), "never");
  assert.ok(
    linearizable([unknownPut, op("k", get, read(null), 5, 6), op("k", get, read("a"), 7, 8)]),
    "late",
  );
  assert.equal(
    linearizable([unknownPut, op("k", get, read("a"), 5, 6), op("k", get, read(null), 7, 8)]),
    false,
    "once applied it stays until the next write",
  );
  // An unknown put cannot take effect before it was called.
  assert.equal(
    linearizable([op("k", get, read("a"), 0, 1), op("k", put("a"), undefined, 2, Infinity)]),
    false,
  );
  // An unknown compare-and-set applies only where its condition held.
  assert.equal(
    linearizable([
      op("k", put("x"), ok, 0, 1),
      op("k", cas("a", "b"), undefined, 2, Infinity),
      op("k", get, read("b"), 3, 4),
    ]),
    false,
  );
});

Deno.test("keys are checked independently", () => {
  assert.ok(linearizable([
    op("a", put("1"), ok, 0, 10),
    op("b", put("2"), ok, 0, 10),
    op("b", get, read("2"), 11, 12),
    op("a", get, read("1"), 11, 12),
  ]));
  assert.equal(linearizable([op("a", put("1"), ok, 0, 1), op("b", get, read("1"), 2, 3)]), false);
});

Deno.test("write revisions must increase in real-time order", () => {
  assert.ok(checkRevisionOrder([op("a", put("1"), ok, 0, 1, 5), op("b", put("2"), ok, 2, 3, 6)]).ok);
  assert.ok(
    checkRevisionOrder([op("a", put("1"), ok, 0, 5, 6), op("b", put("2"), ok, 1, 3, 5)]).ok,
    "concurrent",
  );
  const back = checkRevisionOrder([op("a", put("1"), ok, 0, 1, 6), op("b", put("2"), ok, 2, 3, 5)]);
  assert.equal(back.ok, false);
  assert.match(back.ok ? "" : back.problem, /go back in real time/);
});

/** Random histories built from a sequential execution are linearizable; corrupting one read breaks them. */
Deno.test("random linearizable histories pass, and each with one corrupted read fails", () => {
  const rng = new Rng(7);
  for (let round = 0; round < 40; round++) {
    const ops: KvOperation[] = [];
    let value: string | null = null;
    for (let i = 0; i < 60; i++) {
      const at = i * 10; // the linearization point; the interval around it overlaps neighbours
      const callMs = at - rng.int(0, 25);
      const returnMs = at + rng.int(0, 25);
      const kind = rng.pick(["put", "get", "get", "cas", "del"]);
      if (kind === "put") {
        value = `v${round}-${i}`;
        ops.push(op("k", put(value), ok, callMs, returnMs));
      } else if (kind === "get") ops.push(op("k", get, read(value), callMs, returnMs));
      else if (kind === "cas") {
        const expected = rng.chance(0.5) ? value : "nope";
        const holds = expected === value;
        if (holds) value = `c${round}-${i}`;
        ops.push(op("k", cas(expected, `c${round}-${i}`), { ok: holds }, callMs, returnMs));
      } else {
        value = null;
        ops.push(op("k", del, ok, callMs, returnMs));
      }
    }
    assert.ok(linearizable(ops), `round ${round} should be linearizable`);
    const reads = ops.filter((o) => o.input.kind === "get");
    if (reads.length === 0) continue;
    const victim = rng.pick(reads);
    victim.output = read("never-written");
    assert.equal(linearizable(ops), false, `round ${round} with a corrupted read must fail`);
  }
});
