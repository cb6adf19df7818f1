import { equal, match, throws } from "node:assert/strict";
import { defineSlice, SliceDefinitionError } from "./mod.ts";
import { subscriptionsProblems } from "./_subscriptions.ts";

const base = {
  coordinates: "org.example.shop:billing:1.0.0",
  requires: ["pubsub"],
  methods: { onOrder: () => ({ ok: true }) },
};

Deno.test("subscriptions: a valid declaration is kept on the definition", () => {
  const def = defineSlice({
    ...base,
    subscriptions: [{
      topic: "orders",
      group: "billing",
      method: "onOrder",
      maxAttempts: 3,
      from: "earliest",
    }],
  });
  equal(def.subscriptions?.length, 1);
  equal(def.subscriptions?.[0].maxAttempts, 3);
});

Deno.test("subscriptions: bad declarations name the field", () => {
  const cases: Array<[unknown, RegExp, string[]?]> = [
    [{ topic: "orders" }, /subscriptions must be a list/],
    [
      [{ topic: "orders", group: "billing", method: "nope" }],
      /subscriptions\[0\]\.method must name a method of this slice \(onOrder\)/,
    ],
    [
      [{ topic: "a/b", group: "billing", method: "onOrder" }],
      /subscriptions\[0\]\.topic must be 1-60 letters/,
    ],
    [
      [{ topic: "orders", group: "billing", method: "onOrder", maxAttempts: 0 }],
      /maxAttempts must be an integer from 1 to 100/,
    ],
    [
      [{ topic: "orders", group: "billing", method: "onOrder", from: 5 }],
      /from must be "earliest" or "latest"/,
    ],
    [
      [{ topic: "orders", group: "billing", method: "onOrder", extra: 1 }],
      /subscriptions\[0\]\.extra is not a subscription field/,
    ],
    [
      [{ topic: "orders", group: "b", method: "onOrder" }, {
        topic: "orders",
        group: "b",
        method: "onOrder",
      }],
      /subscribes group b to topic orders twice/,
    ],
    [
      [{ topic: "orders", group: "billing", method: "onOrder" }],
      /subscriptions need "pubsub" in requires/,
      [],
    ],
  ];
  for (const [subscriptions, message, requires] of cases) {
    throws(
      () =>
        defineSlice({ ...base, requires: requires ?? base.requires, subscriptions: subscriptions as never }),
      (e: unknown) => e instanceof SliceDefinitionError && message.test((e as Error).message),
      String(message),
    );
  }
});

Deno.test("subscriptions: the manifest check reports every problem with its path", () => {
  const { problems } = subscriptionsProblems(
    [{ topic: "", group: "g", method: "x" }, "nope"],
    "subscriptions",
    new Set(["onOrder"]),
  );
  equal(problems.length, 3);
  match(problems.map((p) => `${p.path} ${p.message}`).join("\n"), /subscriptions\[1\] must be/);
});
