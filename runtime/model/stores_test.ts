import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { parseStoreKey, storeCodec, storeKeys } from "./stores.ts";

Deno.test("stores family: keys build and parse; bad names are refused with the rule", () => {
  assert.equal(storeKeys.map("cache.sessions"), "stores/cache.sessions/map");
  assert.deepEqual(parseStoreKey("stores/cache.sessions/synced/n2"), {
    kind: "synced",
    store: "cache.sessions",
    node: "n2",
  });
  assert.equal(parseStoreKey("stores/x/other"), undefined);
  assert.equal(parseStoreKey("targets/a:b"), undefined);
  assert.throws(
    () => storeKeys.config("Bad Name"),
    (e: AetherError) => /must be 1-64 characters/.test(e.message),
  );
});

Deno.test("stores family: records are validated on the way in and out, naming the field", () => {
  const config = { replicas: 3, writeQuorum: 2, engine: "sqlite" as const, partitions: 1024, createdAt: 5 };
  assert.deepEqual(storeCodec.decodeConfig(storeCodec.encodeConfig(config)), config);
  assert.throws(
    () => storeCodec.encodeConfig({ ...config, writeQuorum: 4 }),
    (e: AetherError) =>
      e.code === "bad_request" && /writeQuorum \(4\) must not exceed replicas \(3\)/.test(e.message),
  );
  assert.throws(
    () => storeCodec.encodeConfig({ ...config, engine: "disk" as "sqlite" }),
    (e: AetherError) => e.extra.field === "engine",
  );
  const map = {
    epoch: 3,
    nodes: ["n1", "n2"],
    owners: [[0, 1], [1, 0]],
    moving: { "1": { next: [1], since: 2 } },
    updatedAt: 1,
  };
  assert.deepEqual(storeCodec.decodeMap(storeCodec.encodeMap(map)), map);
  assert.throws(
    () => storeCodec.encodeMap({ ...map, owners: [[0, 2]] }),
    (e: AetherError) => /names node index 2 beyond nodes/.test(e.message),
  );
  assert.throws(
    () => storeCodec.encodeMap({ ...map, moving: { "1": { next: [1], since: 9 } } }),
    (e: AetherError) => /since is after the map's epoch/.test(e.message),
  );
  assert.throws(
    () => storeCodec.decodeSync(new TextEncoder().encode("{not json")),
    (e: AetherError) => /not UTF-8 JSON/.test(e.message),
  );
});
