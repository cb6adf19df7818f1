import assert from "node:assert/strict";
import { LatencyHistogram } from "../core/mod.ts";
import { decodeValue, encodeValue, parseRolloutSpec } from "../model/mod.ts";
import { analyse, rollingBatch, type WindowStats } from "./rollout.ts";
import { newRolloutRecord } from "./rollout_spec.ts";

function stats(calls: number, errors: number, latencyMs: number): WindowStats {
  const h = new LatencyHistogram();
  for (let i = 0; i < calls; i++) h.observe(latencyMs);
  return { calls, errors, latency: h.data() };
}

const canary = (analysis = {}) =>
  newRolloutRecord({ strategy: "canary", analysis }, {
    stableVersion: "1.0.0",
    newVersion: "1.1.0",
    instances: 3,
    nowMs: 1,
  });

Deno.test("analysis: success rate below the minimum fails, naming both figures", () => {
  const v = analyse(canary(), stats(100, 2, 5), stats(900, 0, 5), 10)!;
  assert.equal(v.ok, false);
  assert.match(v.reason, /success rate 98\.00% < 99\.00%/);
  assert.equal(analyse(canary(), stats(100, 1, 5), stats(900, 0, 5), 10)!.ok, true);
});

Deno.test("analysis: p99 against the stable one's with a factor and a tolerance, or an absolute objective", () => {
  // 40 ms against 20 ms: over 1.5x, but within the default 50 ms tolerance.
  assert.equal(analyse(canary(), stats(200, 0, 40), stats(200, 0, 20), 10)!.ok, true);
  const slow = analyse(canary(), stats(200, 0, 400), stats(200, 0, 20), 10)!;
  assert.equal(slow.ok, false);
  assert.match(slow.reason, /p99 \d+\.\d ms > 70\.0 ms/);
  assert.equal(analyse(canary({ p99ToleranceMs: 0 }), stats(200, 0, 40), stats(200, 0, 20), 10)!.ok, false);
  assert.equal(analyse(canary({ maxP99Ms: 100 }), stats(200, 0, 90), stats(200, 0, 5), 10)!.ok, true);
  assert.equal(analyse(canary({ maxP99Ms: 100 }), stats(200, 0, 400), stats(200, 0, 5), 10)!.ok, false);
});

Deno.test("analysis: a p99 over fewer than 100 calls is not judged (it is the slowest call)", () => {
  const v = analyse(canary(), stats(99, 0, 400), stats(900, 0, 5), 10)!;
  assert.equal(v.ok, true);
  assert.match(v.reason, /p99 not judged below 100 calls/);
  assert.equal(analyse(canary(), stats(100, 0, 400), stats(900, 0, 5), 10)!.ok, false);
});

Deno.test("analysis: too few calls give no verdict", () => {
  assert.equal(analyse(canary(), stats(19, 19, 5), stats(900, 0, 5), 10), undefined);
  assert.equal(analyse(canary(), undefined, stats(900, 0, 5), 10), undefined);
  assert.equal(analyse(canary({ minRequests: 5 }), stats(5, 5, 5), undefined, 10)!.ok, false);
});

Deno.test("rolling batches: surge rounds up, unavailable down, and something always moves", () => {
  assert.deepEqual(rollingBatch("25%", "0", 3), { surge: 1, unavailable: 0 });
  assert.deepEqual(rollingBatch("25%", "0", 8), { surge: 2, unavailable: 0 });
  assert.deepEqual(rollingBatch("0", "0", 4), { surge: 1, unavailable: 0 });
  assert.deepEqual(rollingBatch("0", "25%", 3), { surge: 1, unavailable: 0 });
  assert.deepEqual(rollingBatch("2", "50%", 5), { surge: 2, unavailable: 2 });
});

Deno.test("analysis.alerts: alert rule names, distinct, each bad entry named where", () => {
  const spec = (alerts: unknown) => parseRolloutSpec({ strategy: "canary", analysis: { alerts } }, "body");
  assert.deepEqual(spec(["high-latency", "error.rate"]).analysis, { alerts: ["high-latency", "error.rate"] });
  assert.throws(
    () => spec("high-latency"),
    /body: analysis\.alerts must be a list of up to 16 alert rule names/,
  );
  assert.throws(
    () => spec(["ok", "Bad Name"]),
    /body: analysis\.alerts\[1\] is not an alert rule name: "Bad Name"/,
  );
  assert.throws(() => spec(["a", "a"]), /body: analysis\.alerts names a twice/);
  // The stored record keeps the list (and checks it again when read back).
  const record = newRolloutRecord({ strategy: "canary", analysis: { alerts: ["high-latency"] } }, {
    stableVersion: "1.0.0",
    newVersion: "1.1.0",
    instances: 3,
    nowMs: 1,
  });
  assert.deepEqual(record.analysis.alerts, ["high-latency"]);
  assert.deepEqual(decodeValue("rollout", encodeValue("rollout", record)).analysis.alerts, ["high-latency"]);
});
