import { equal, ok } from "node:assert/strict";
import { splitShares, TokenBucket } from "./ratelimit.ts";

Deno.test("token bucket: refills at its rate up to its size; reshape keeps tokens, clamped", () => {
  const bucket = new TokenBucket(10, 5, 0);
  let granted = 0;
  for (let i = 0; i < 10; i++) if (bucket.tryTake(1, 0)) granted++;
  equal(granted, 5, "a full bucket grants its size at once");
  equal(bucket.tryTake(1, 50), false, "half a permit after 50 ms at 10/s");
  ok(bucket.tryTake(1, 100));
  // Over 10 s at 10/s: 100 permits, never more than the rate allows.
  granted = 0;
  for (let t = 100; t <= 10_100; t += 7) if (bucket.tryTake(1, t)) granted++;
  ok(granted >= 99 && granted <= 101, `10 s at 10/s granted ${granted}`);
  bucket.reshape(1, 2, 20_000);
  ok(bucket.tokens(20_000) <= 2, "tokens clamped to the new size");
});

Deno.test("splitShares: sums to 1, follows demand, keeps a floor, fair when all ask", () => {
  const nodes = ["n1", "n2", "n3"];
  const even = splitShares(300, nodes, () => 1_000);
  for (const node of nodes) ok(Math.abs(even.get(node)! - 1 / 3) < 1e-9);
  const skew = splitShares(300, nodes, (n) => (n === "n1" ? 1_000 : 0));
  const sum = [...skew.values()].reduce((a, b) => a + b, 0);
  ok(Math.abs(sum - 1) < 1e-9, `sum ${sum}`);
  ok(skew.get("n1")! > 0.95, `the node asking gets nearly all: ${skew.get("n1")}`);
  ok(skew.get("n2")! > 0, "an idle node keeps a floor");
  const mixed = splitShares(300, nodes, (n) => (n === "n1" ? 20 : 1_000));
  ok(
    Math.abs(mixed.get("n1")! * 300 - 25) < 1e-6,
    `a small demand gets it with headroom: ${mixed.get("n1")! * 300}`,
  );
  ok(Math.abs(mixed.get("n2")! - mixed.get("n3")!) < 1e-9);
  equal(splitShares(100, [], () => 1).size, 0);
});
