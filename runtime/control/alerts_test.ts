import assert from "node:assert/strict";
import { LatencyHistogram } from "../core/mod.ts";
import type { AlertRuleRecord } from "../model/mod.ts";
import {
  type AlertChange,
  AlertEvaluator,
  type AlertSeries,
  type AlertStatus,
  INACTIVE,
  NO_DATA_GRACE_MS,
  stepAlert,
} from "./alerts.ts";

Deno.test("alert state machine: pending, firing after `for`, resolved", () => {
  let status: AlertStatus = INACTIVE;
  const step = (holds: boolean, now: number) => {
    const { next, transitions } = stepAlert(status, holds, now, 30_000);
    status = next;
    return transitions;
  };
  assert.deepEqual(step(false, 0), []);
  assert.deepEqual(step(true, 1_000), ["pending"]);
  assert.deepEqual(status, { state: "pending", activeSince: 1_000 });
  assert.deepEqual(step(true, 30_999), []);
  assert.deepEqual(step(true, 31_000), ["firing"]);
  assert.deepEqual(status, { state: "firing", activeSince: 1_000, firedAt: 31_000 });
  assert.deepEqual(step(true, 60_000), [], "firing stays firing without a new event");
  assert.deepEqual(step(false, 61_000), ["resolved"]);
  assert.deepEqual(status, INACTIVE);
});

Deno.test("alert state machine: `for` 0 fires at once (pending and firing in one tick)", () => {
  const { next, transitions } = stepAlert(INACTIVE, true, 5, 0);
  assert.deepEqual(transitions, ["pending", "firing"]);
  assert.deepEqual(next, { state: "firing", activeSince: 5, firedAt: 5 });
});

Deno.test("alert state machine: a condition flapping faster than `for` never fires; each return waits again", () => {
  let status: AlertStatus = INACTIVE;
  const seen: string[] = [];
  // Holds for 20 s, stops for 1 s, over and over for 10 minutes, with `for` 30 s.
  for (let t = 0; t < 600_000; t += 1_000) {
    const holds = t % 21_000 < 20_000;
    const { next, transitions } = stepAlert(status, holds, t, 30_000);
    status = next;
    seen.push(...transitions);
  }
  assert.ok(!seen.includes("firing"), "never fires");
  assert.ok(seen.filter((s) => s === "pending").length >= 28, "pending again after each stop");
  assert.equal(seen.filter((s) => s === "pending").length, seen.filter((s) => s === "cleared").length + 1);
  // A firing alert that flaps resolves and must wait the full `for` again.
  let firing: AlertStatus = { state: "firing", activeSince: 0, firedAt: 30_000 };
  firing = stepAlert(firing, false, 40_000, 30_000).next;
  const again = stepAlert(firing, true, 41_000, 30_000);
  assert.deepEqual(again.transitions, ["pending"]);
  assert.deepEqual(stepAlert(again.next, true, 70_000, 30_000).transitions, []);
  assert.deepEqual(stepAlert(again.next, true, 71_000, 30_000).transitions, ["firing"]);
});

/** Series with counters the test moves by hand. */
class TestSeries implements AlertSeries {
  readonly latency = new LatencyHistogram();
  calls = 0;
  errors = 0;
  cpu: Record<string, number> = { n1: 0.1, n2: 0.1 };
  active = 3;
  desired = 3;

  record(count: number, ms: number, errors = 0): void {
    for (let i = 0; i < count; i++) this.latency.observe(ms);
    this.calls += count;
    this.errors += errors;
  }
  sliceCounters(slice: string) {
    if (slice !== "org.example:orders" || this.calls === 0) return undefined;
    return { latency: this.latency.data(), calls: this.calls, errors: this.errors };
  }
  nodes() {
    return Object.entries(this.cpu).map(([node, cpuShare]) => ({ node, cpuShare, rssBytes: 1e8 }));
  }
  instances(slice: string) {
    return slice === "org.example:orders" ? { active: this.active, desired: this.desired } : undefined;
  }
}

function rule(fields: Partial<AlertRuleRecord>): AlertRuleRecord {
  return {
    metric: "node_cpu",
    op: ">",
    threshold: 0.9,
    forMs: 0,
    severity: "warning",
    updatedAt: 1,
    ...fields,
  };
}

function summary(changes: AlertChange[]): string[] {
  return changes.map((c) => `${c.transition} ${c.alert.id}`);
}

Deno.test("alert evaluator: p99 over the window fires after `for` and resolves when calls get fast again", () => {
  const series = new TestSeries();
  const rules = new Map([[
    "orders-p99",
    rule({
      metric: "latency",
      slice: "org.example:orders",
      method: "placeOrder",
      quantile: 0.99,
      threshold: 200,
      forMs: 3_000,
      windowMs: 5_000,
    }),
  ]]);
  const evaluator = new AlertEvaluator();
  const changes: string[] = [];
  const tick = (t: number) => changes.push(...summary(evaluator.evaluate(rules, series, t)));
  series.record(100, 10);
  tick(0);
  for (let t = 1_000; t <= 3_000; t += 1_000) {
    series.record(100, 10);
    tick(t);
  }
  assert.deepEqual(changes, [], "fast calls: nothing");
  for (let t = 4_000; t <= 10_000; t += 1_000) {
    series.record(100, 400);
    tick(t);
  }
  assert.deepEqual(changes, ["pending orders-p99", "firing orders-p99"]);
  const [firing] = evaluator.alerts();
  assert.equal(firing.state, "firing");
  assert.ok(firing.value! > 300 && firing.value! <= 500, `p99 ${firing.value}`);
  assert.equal(firing.expr, "p99 of org.example:orders/placeOrder > 200ms");
  for (let t = 11_000; t <= 20_000; t += 1_000) {
    series.record(100, 10);
    tick(t);
  }
  assert.deepEqual(
    changes.slice(2),
    ["resolved orders-p99"],
    "resolved once the slow calls left the 5 s window",
  );
  assert.deepEqual(evaluator.alerts(), []);
});

Deno.test("alert evaluator: error rate, without calls there is no data (the alert does not hold)", () => {
  const series = new TestSeries();
  const rules = new Map([[
    "orders-errors",
    rule({
      metric: "error_rate",
      slice: "org.example:orders",
      threshold: 0.01,
      windowMs: 10_000,
    }),
  ]]);
  const evaluator = new AlertEvaluator();
  series.record(100, 5, 0);
  assert.deepEqual(evaluator.evaluate(rules, series, 0), []);
  series.record(100, 5, 5);
  assert.deepEqual(summary(evaluator.evaluate(rules, series, 1_000)), [
    "pending orders-errors",
    "firing orders-errors",
  ]);
  assert.equal(evaluator.alerts()[0].value, 0.05);
  // No calls at all: once the window holds none (from 11 s: the last calls were counted by the 1 s sample)
  // there is no data; the alert keeps firing through the grace after its last data (10 s), then resolves.
  let resolvedAt = 0;
  for (let t = 2_000; t <= 40_000 && resolvedAt === 0; t += 1_000) {
    if (summary(evaluator.evaluate(rules, series, t)).includes("resolved orders-errors")) resolvedAt = t;
  }
  assert.ok(resolvedAt >= 10_000 + NO_DATA_GRACE_MS, `resolved at ${resolvedAt}: not within the grace`);
  assert.ok(resolvedAt <= 12_000 + NO_DATA_GRACE_MS, `resolved at ${resolvedAt}`);
  assert.deepEqual(evaluator.alerts(), []);
});

Deno.test("alert evaluator: `cpu of nodes` is one alert per node; a node gone for the grace resolves its alert", () => {
  const series = new TestSeries();
  const rules = new Map([["cpu", rule({ forMs: 2_000 })]]);
  const evaluator = new AlertEvaluator();
  series.cpu = { n1: 0.95, n2: 0.2 };
  assert.deepEqual(summary(evaluator.evaluate(rules, series, 0)), ["pending cpu/n1"]);
  assert.deepEqual(summary(evaluator.evaluate(rules, series, 2_000)), ["firing cpu/n1"]);
  assert.equal(evaluator.alerts()[0].node, "n1");
  series.cpu = { n2: 0.2 };
  // Stale or gone for less than the grace: still firing (a loaded node must not resolve and re-fire).
  assert.deepEqual(evaluator.evaluate(rules, series, 3_000), []);
  assert.deepEqual(evaluator.evaluate(rules, series, 2_000 + NO_DATA_GRACE_MS - 1), []);
  series.cpu = { n1: 0.95, n2: 0.2 };
  assert.deepEqual(evaluator.evaluate(rules, series, 2_000 + NO_DATA_GRACE_MS), [], "back in time: no event");
  series.cpu = { n2: 0.2 };
  assert.deepEqual(evaluator.evaluate(rules, series, 3_000 + NO_DATA_GRACE_MS), []);
  assert.deepEqual(summary(evaluator.evaluate(rules, series, 2_000 + 2 * NO_DATA_GRACE_MS)), [
    "resolved cpu/n1",
  ]);
});

Deno.test("alert evaluator: ACTIVE instances below desired; removing the rule resolves its alert", () => {
  const series = new TestSeries();
  const rules = new Map([[
    "orders-capacity",
    rule({
      metric: "instances_active",
      slice: "org.example:orders",
      op: "<",
      threshold: "desired",
      forMs: 1_000,
    }),
  ]]);
  const evaluator = new AlertEvaluator();
  assert.deepEqual(evaluator.evaluate(rules, series, 0), []);
  series.active = 2;
  assert.deepEqual(summary(evaluator.evaluate(rules, series, 1_000)), ["pending orders-capacity"]);
  assert.deepEqual(summary(evaluator.evaluate(rules, series, 2_000)), ["firing orders-capacity"]);
  assert.equal(evaluator.alerts()[0].threshold, 3);
  assert.deepEqual(summary(evaluator.evaluate(new Map(), series, 3_000)), ["resolved orders-capacity"]);
});

Deno.test("alert evaluator: a new leader seeded with the alerts does not fire them again", () => {
  const series = new TestSeries();
  series.cpu = { n1: 0.95 };
  const rules = new Map([["cpu", rule({ forMs: 0 })]]);
  const first = new AlertEvaluator();
  assert.deepEqual(summary(first.evaluate(rules, series, 0)), ["pending cpu/n1", "firing cpu/n1"]);
  const next = new AlertEvaluator();
  next.seed(first.alerts());
  assert.deepEqual(next.evaluate(rules, series, 1_000), [], "still firing: no new event");
  series.cpu = { n1: 0.1 };
  assert.deepEqual(summary(next.evaluate(rules, series, 2_000)), ["resolved cpu/n1"]);
});
