import assert from "node:assert/strict";
import { parseStoreMessage } from "./_protocol.ts";

Deno.test("store protocol: well-formed messages pass; a bad field is named, unknown types refused", () => {
  const rep = {
    t: "rep",
    id: 1,
    s: "a",
    p: 3,
    epoch: 2,
    e: [["k", "v", 5, "n1", 10, 0], ["d", null, 6, "n1", 10, 0]],
  };
  assert.deepEqual(parseStoreMessage(rep), rep);
  assert.equal(parseStoreMessage({ ...rep, e: [["k", 5, 5, "n1", 10, 0]] }), "rep: bad field e");
  assert.equal(parseStoreMessage({ t: "op", id: 1, s: "a", p: 1, op: "scan", key: "k" }), "op: bad field op");
  assert.equal(parseStoreMessage({ t: "op", id: -1, s: "a", p: 1, op: "get", key: "k" }), "op: bad field id");
  assert.equal(parseStoreMessage({ t: "dig", s: "a", epoch: 1, d: [1, 2] }), "dig: bad field d");
  assert.match(String(parseStoreMessage({ t: "boom" })), /unknown store message type "boom"/);
  assert.equal(parseStoreMessage("text"), "not a store message");
  const refusal = {
    t: "op-r",
    id: 4,
    ok: false,
    code: "compare_failed",
    message: "m",
    retry: false,
    current: 7,
  };
  assert.deepEqual(parseStoreMessage(refusal), refusal);
  assert.equal(parseStoreMessage({ ...refusal, code: "nope" }), "op-r: bad field code");
});
