// Dynamic aspects' pure parts: redaction (defaults, names at any depth, dotted paths), truncation with a
// marker, and the aspect keys and records of the model (bad targets named).

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { boundedJson, mergeRedactionRules, redact, redactionRules } from "./aspects.ts";
import {
  aspectKey,
  decodeAspectRecord,
  encodeAspectRecord,
  parseAspectKey,
  parseAspectTarget,
} from "../model/mod.ts";

Deno.test("redaction: default secret keys at any depth, declared names and dotted paths", () => {
  const rules = redactionRules(["pin", "card.number"]);
  const value = {
    user: "ann",
    Password: "p",
    nested: { apiKey: "k", accessToken: "t", list: [{ pin: "1234", note: "x" }] },
    card: { number: "4111", holder: "Ann" },
    other: { number: 7 },
    order: { card: { number: "5500" } },
  };
  deepEqual(redact(value, rules), {
    user: "ann",
    Password: "[redacted]",
    nested: { apiKey: "[redacted]", accessToken: "[redacted]", list: [{ pin: "[redacted]", note: "x" }] },
    card: { number: "[redacted]", holder: "Ann" },
    other: { number: 7 },
    order: { card: { number: "[redacted]" } },
  });
  equal(redact("plain", rules), "plain");
  // The input is not changed.
  equal(value.card.number, "4111");
});

Deno.test("redaction of a service's call: the caller's declared names and paths as well as the service's", () => {
  const service = redactionRules(["sql"]);
  const caller = redactionRules(["pin", "card.number"]);
  const rules = mergeRedactionRules(service, caller);
  deepEqual(
    redact({ sql: "SELECT 1", headers: { pin: "1234" }, card: { number: "4111" }, url: "u" }, rules),
    {
      sql: "[redacted]",
      headers: { pin: "[redacted]" },
      card: { number: "[redacted]" },
      url: "u",
    },
  );
  // Neither list is changed by the merge.
  deepEqual([...service.names], ["sql"]);
  deepEqual([...caller.names], ["pin"]);
});

Deno.test("truncation: JSON cut at the byte limit on a character boundary, with the count left out", () => {
  equal(boundedJson({ a: 1 }), '{"a":1}');
  const long = boundedJson({ text: "é".repeat(5_000) }, 100);
  match(long, /…\[truncated \d+ bytes\]$/);
  ok(new TextEncoder().encode(long.slice(0, long.indexOf("…"))).byteLength <= 100);
  const dropped = Number(/truncated (\d+) bytes/.exec(long)![1]);
  equal(dropped + new TextEncoder().encode(long.slice(0, long.indexOf("…"))).byteLength, 10_011);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  match(boundedJson(cyclic), /^\[not JSON/);
});

Deno.test("aspect keys and records: targets validated, keys round-trip", () => {
  deepEqual(parseAspectTarget("org.example.shop:orders/placeOrder"), {
    slice: "org.example.shop:orders",
    method: "placeOrder",
  });
  equal(aspectKey("org.example.shop:orders", "placeOrder"), "aspects/org.example.shop:orders/placeOrder");
  deepEqual(parseAspectKey("aspects/org.example.shop:orders/placeOrder"), {
    slice: "org.example.shop:orders",
    method: "placeOrder",
  });
  equal(parseAspectKey("aspects/garbage"), undefined);
  throws(() => parseAspectTarget("orders/placeOrder", "target"), /target/);
  throws(() => parseAspectTarget("org.example:orders", "target"), /group:artifact\/method/);
  throws(() => parseAspectTarget("org.example:orders/Bad-Name", "target"), /method "Bad-Name"/);
  const bytes = encodeAspectRecord({ mode: "log+metrics", updatedAt: 1_700_000_000_000, by: "ops" });
  deepEqual(decodeAspectRecord(bytes), { mode: "log+metrics", updatedAt: 1_700_000_000_000, by: "ops" });
  throws(() => encodeAspectRecord({ mode: "none" as never, updatedAt: 1 }), /mode/);
});
