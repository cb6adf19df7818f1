import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { validate } from "./_validate.ts";
import { expressionOf, parseAlertExpression, thresholdCheck } from "./thresholds.ts";

Deno.test("thresholds: the issue's four rules parse, and print back as the same text", () => {
  const cases: [string, Record<string, unknown>][] = [
    ["p99 of org.example:orders/placeOrder > 200ms", {
      metric: "latency",
      quantile: 0.99,
      slice: "org.example:orders",
      method: "placeOrder",
      op: ">",
      threshold: 200,
    }],
    ["error-rate of org.example:orders > 1%", {
      metric: "error_rate",
      slice: "org.example:orders",
      op: ">",
      threshold: 0.01,
    }],
    ["cpu of nodes > 90%", { metric: "node_cpu", op: ">", threshold: 0.9 }],
    ["cpu of node n1 >= 50%", { metric: "node_cpu", node: "n1", op: ">=", threshold: 0.5 }],
    ["instances of org.example:orders < desired", {
      metric: "instances_active",
      slice: "org.example:orders",
      op: "<",
      threshold: "desired",
    }],
    ["memory of nodes > 1073741824", { metric: "node_memory", op: ">", threshold: 1024 ** 3 }],
    ["p99.9 of a:b <= 1500ms", {
      metric: "latency",
      quantile: 0.999,
      slice: "a:b",
      op: "<=",
      threshold: 1500,
    }],
  ];
  for (const [text, expected] of cases) {
    const parsed = parseAlertExpression(text);
    assert.deepEqual(parsed, expected, text);
    assert.deepEqual(parseAlertExpression(expressionOf(parsed)), parsed, `round trip of ${text}`);
  }
  assert.equal(parseAlertExpression("p95 of a:b > 2s").threshold, 2_000);
  assert.equal(parseAlertExpression("p999 of a:b > 2s").quantile, 0.999);
  assert.equal(parseAlertExpression("memory of nodes > 1.5GiB").threshold, 1.5 * 1024 ** 3);
  assert.equal(expressionOf(parseAlertExpression("p99 of a:b/m > 200ms")), "p99 of a:b/m > 200ms");
});

Deno.test("thresholds: a bad expression is a 400 naming the part that is wrong", () => {
  const cases: [string, RegExp][] = [
    ["p99 orders > 200", /not WHAT of SCOPE OP VALUE/],
    ["p10 of a:b > 200ms", /p10: a quantile from p50 to p999/],
    ["latency of a:b > 200ms", /"latency" is not p50..p999/],
    ["p99 of orders > 200ms", /"orders" is not a slice/],
    ["p99 of a:b > 200 ms", /not WHAT of SCOPE OP VALUE/],
    ["p99 of a:b > 200h", /"200h" is not a number \(units: ms, s\)/],
    ["cpu of n1 > 90%", /"n1" is not "node ID" or "nodes"/],
    ["instances of a:b/m < desired", /per slice, not per method/],
    ["error-rate of a:b > desired", /"desired" compares instances only/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(
      () => parseAlertExpression(text),
      (e: unknown) => e instanceof AetherError && e.code === "bad_request" && pattern.test(e.message),
      text,
    );
  }
});

Deno.test("thresholds: the record check refuses rules that cannot be evaluated, naming the field", () => {
  const base = { op: ">", threshold: 1, forMs: 0, severity: "warning", updatedAt: 1 };
  const ok = [
    { ...base, metric: "node_cpu" },
    { ...base, metric: "error_rate", slice: "a:b", windowMs: 30_000 },
    { ...base, metric: "instances_active", slice: "a:b", threshold: "desired", op: "<" },
  ];
  for (const rule of ok) validate(thresholdCheck, rule, "rule");
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...base, metric: "node_cpu", slice: "a:b" }, /slice: node_cpu is measured per node/],
    [{ ...base, metric: "latency", slice: "a:b", node: "n1" }, /node: only node_cpu and node_memory/],
    [{ ...base, metric: "node_cpu", windowMs: 5_000 }, /windowMs: only latency and error_rate/],
    [{ ...base, metric: "node_cpu", forMs: -1 }, /forMs must be an integer from 0/],
    [{ ...base, metric: "node_cpu", severity: "page" }, /severity must be one of info, warning, critical/],
    [{ ...base, metric: "error_rate", slice: "a:b", method: "bad name" }, /method/],
  ];
  for (const [rule, pattern] of bad) {
    assert.throws(() => validate(thresholdCheck, rule, "rule"), pattern, JSON.stringify(rule));
  }
});
