import assert from "node:assert/strict";
import { type KvEvent, KvState } from "../kv/mod.ts";
import { encodeValue, kvKeys } from "../model/mod.ts";
import { EndpointRegistry } from "./endpoints.ts";
import { applyCommand } from "./_testing.ts";

const VALUE = encodeValue("endpoint", { registeredAt: 1 });

function put(kv: KvState, key: string, events?: KvEvent[]): void {
  applyCommand(kv, { type: "put", key, value: VALUE }, events);
}

Deno.test("endpoints: built from KV, looked up by slice or by exact version, sorted by node", () => {
  const kv = new KvState();
  put(kv, kvKeys.endpoint("g:a:1.0.0", "get", "n3", 0));
  put(kv, kvKeys.endpoint("g:a:1.0.0", "get", "n1", 1));
  put(kv, kvKeys.endpoint("g:a:1.0.0", "get", "n1", 0));
  put(kv, kvKeys.endpoint("g:a:2.0.0", "get", "n2", 0));
  put(kv, kvKeys.endpoint("g:a:1.0.0", "put", "n1", 0));
  put(kv, kvKeys.endpoint("g:ab:1.0.0", "get", "n1", 0));
  applyCommand(kv, { type: "put", key: "app/x", value: new Uint8Array([1]) });
  const registry = EndpointRegistry.fromKv(kv);
  assert.equal(registry.size, 6);
  assert.equal(registry.revision, kv.revision);
  assert.deepEqual(
    registry.lookup("g:a", "get").map((e) => `${e.node}/${e.artifact}/${e.n}`),
    ["n1/g:a:1.0.0/0", "n1/g:a:1.0.0/1", "n2/g:a:2.0.0/0", "n3/g:a:1.0.0/0"],
  );
  assert.deepEqual(registry.lookup("g:a:2.0.0", "get").map((e) => e.node), ["n2"]);
  assert.deepEqual(registry.lookup("g:a", "delete"), []);
  assert.deepEqual(registry.lookup("g:nope", "get"), []);
  assert.deepEqual(registry.methods("g:a"), ["get", "put"]);
  assert.deepEqual(registry.methods("g:ab"), ["get"], "g:a is not a prefix match for g:ab");
});

Deno.test("endpoints: connectivity filters at lookup; watch events keep the registry current", () => {
  const kv = new KvState();
  put(kv, kvKeys.endpoint("g:a:1.0.0", "get", "n1", 0));
  const registry = EndpointRegistry.fromKv(kv);
  const events: KvEvent[] = [];
  put(kv, kvKeys.endpoint("g:a:1.0.0", "get", "n2", 0), events);
  put(kv, kvKeys.endpoint("g:a:1.0.0", "get", "n2", 0), events); // a re-put changes nothing
  applyCommand(kv, { type: "delete", key: kvKeys.endpoint("g:a:1.0.0", "get", "n1", 0) }, events);
  applyCommand(kv, { type: "put", key: "targets/g:a", value: new Uint8Array([1]) }, events);
  registry.apply(events);
  assert.deepEqual(registry.lookup("g:a", "get").map((e) => e.node), ["n2"]);
  assert.deepEqual(registry.lookup("g:a", "get", (node) => node !== "n2"), []);
  // Events already applied (a watch that starts at the registry's revision or earlier) are not applied twice.
  registry.apply(events);
  assert.equal(registry.size, 1);
  assert.equal(registry.revision, kv.revision);

  // A departure cleanup in one transaction removes a node's endpoints at once.
  const more: KvEvent[] = [];
  put(kv, kvKeys.endpoint("g:b:1.0.0", "run", "n2", 0), more);
  applyCommand(kv, {
    type: "txn",
    compare: [],
    success: [
      { op: "delete", key: kvKeys.endpoint("g:a:1.0.0", "get", "n2", 0) },
      { op: "delete", key: kvKeys.endpoint("g:b:1.0.0", "run", "n2", 0) },
    ],
    failure: [],
  }, more);
  registry.apply(more);
  assert.equal(registry.size, 0);
  assert.deepEqual(registry.methods("g:a"), []);

  // After a snapshot install the registry is rebuilt from the new state.
  const other = new KvState();
  put(other, kvKeys.endpoint("g:c:1.0.0", "x1", "n9", 4));
  registry.reset(other);
  assert.deepEqual(registry.lookup("g:c", "x1").map((e) => [e.node, e.n]), [["n9", 4]]);
});
