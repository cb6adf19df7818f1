import { deepEqual, equal, throws } from "node:assert/strict";
import { describeFault, FaultSet, MAX_FAULTS } from "./faults.ts";

Deno.test("a partition cuts one link, both directions, and nothing else", () => {
  const faults = new FaultSet(["n1", "n2", "n3"]);
  faults.add({ kind: "partition", a: "n2", b: "n1" });
  deepEqual(faults.link("n1", "n2"), { partitioned: true, latencyMs: 0 });
  deepEqual(faults.link("n2", "n1"), { partitioned: true, latencyMs: 0 });
  deepEqual(faults.link("n1", "n3"), { partitioned: false, latencyMs: 0 });
  deepEqual(faults.link("n2", "n3"), { partitioned: false, latencyMs: 0 });
});

Deno.test("isolate cuts every link of the member", () => {
  const faults = new FaultSet(["n1", "n2", "n3"]);
  faults.add({ kind: "isolate", node: "n3" });
  equal(faults.link("n1", "n3").partitioned, true);
  equal(faults.link("n3", "n2").partitioned, true);
  equal(faults.link("n1", "n2").partitioned, false);
});

Deno.test("latency on a link replaces the previous latency on it; heal clears everything", () => {
  const faults = new FaultSet(["n1", "n2", "n3"]);
  faults.add({ kind: "latency", a: "n1", b: "n2", ms: 100 });
  faults.add({ kind: "latency", a: "n2", b: "n1", ms: 40 });
  faults.add({ kind: "partition", a: "n1", b: "n2" });
  faults.add({ kind: "partition", a: "n1", b: "n2" });
  deepEqual(faults.link("n1", "n2"), { partitioned: true, latencyMs: 40 });
  deepEqual(faults.list().map(describeFault), ["latency n2 n1 40ms", "partition n1 n2"]);
  equal(faults.clear(), 2);
  deepEqual(faults.link("n1", "n2"), { partitioned: false, latencyMs: 0 });
  deepEqual(faults.list(), []);
});

Deno.test("faults must name members, two different ones for a link", () => {
  const faults = new FaultSet(["n1", "n2", "n3"]);
  throws(
    () => faults.add({ kind: "partition", a: "n1", b: "n9" }),
    /no member "n9"; the members are n1, n2, n3/,
  );
  throws(() => faults.add({ kind: "isolate", node: "x" }), /no member "x"/);
  throws(() => faults.add({ kind: "latency", a: "n1", b: "n1", ms: 5 }), /two different members/);
  deepEqual(faults.list(), []);
});

Deno.test("the number of active faults is bounded", () => {
  const members = Array.from({ length: 20 }, (_, i) => `m${String(i).padStart(2, "0")}`);
  const faults = new FaultSet(members);
  let added = 0;
  throws(() => {
    for (const a of members) {
      for (const b of members) {
        if (a < b) {
          faults.add({ kind: "partition", a, b });
          added++;
        }
      }
    }
  }, /at most 64 faults/);
  equal(added, MAX_FAULTS);
});
