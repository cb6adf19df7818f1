/** `aether audit`'s TOKEN column. */

import assert from "node:assert/strict";
import { auditWho } from "./access.ts";

Deno.test("audit: a slice's secret read shows which slice read it; a token call shows the token", () => {
  // A secret read is recorded by the node with no token: the slice and instance are its only "who".
  assert.equal(
    auditWho({ tokenName: "slice org.example:billing:1.0.0 (org.example:billing:1.0.0/0)" }),
    "slice org.example:billing:1.0.0 (org.example:billing:1.0.0/0)",
  );
  assert.equal(
    auditWho({ tokenId: "f9898853c26f", tokenName: "bootstrap admin" }),
    "f9898853c26f (bootstrap admin)",
  );
  assert.equal(auditWho({}), "-");
  assert.equal(
    auditWho({ tokenName: "evil\u001b[2Jname" }).includes("\u001b"),
    false,
    "control characters escaped",
  );
});
