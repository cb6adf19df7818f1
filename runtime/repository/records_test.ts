import { deepStrictEqual, equal } from "node:assert/strict";
import { KvState } from "../kv/mod.ts";
import { encodeEntry, kvKeys } from "../model/mod.ts";
import { usersOf, withHolder } from "./_records.ts";

const utf8 = new TextEncoder();

function stateWith(records: Record<string, unknown>): KvState {
  const state = new KvState();
  for (const [key, value] of Object.entries(records)) {
    const bytes = value instanceof Uint8Array ? value : encodeEntry(key, value);
    state.apply({ type: "put", key, value: bytes });
  }
  return state;
}

Deno.test("records: blueprints, the target, routing weights and instances that use a version are named", () => {
  const state = stateWith({
    [kvKeys.blueprint("org.example:shop:1.0.0")]: {
      id: "org.example:shop:1.0.0",
      slices: [{ artifact: "org.example:orders:1.2.0", instances: 1, requires: [], transitive: false }],
      publishedAt: 1,
    },
    [kvKeys.blueprint("org.example:other:1.0.0")]: {
      id: "org.example:other:1.0.0",
      slices: [{ artifact: "org.example:orders:1.1.0", instances: 1, requires: [], transitive: false }],
      publishedAt: 1,
    },
    [kvKeys.target("org.example:orders")]: { version: "1.2.0", instances: 2, owners: [], updatedAt: 1 },
    [kvKeys.routing("org.example:orders")]: {
      oldVersion: "1.1.0",
      newVersion: "1.2.0",
      oldWeight: 1,
      newWeight: 1,
      updatedAt: 1,
    },
    [kvKeys.instance("n2", "org.example:orders:1.2.0", 0)]: { state: "ACTIVE", updatedAt: 1 },
    [kvKeys.instance("n1", "org.example:orders:1.2.0", 1)]: { state: "LOADING", updatedAt: 1 },
    [kvKeys.instance("n3", "org.example:orders:1.1.0", 0)]: { state: "ACTIVE", updatedAt: 1 },
  });
  deepStrictEqual(usersOf(state, "org.example:orders:1.2.0"), [
    "blueprint org.example:shop:1.0.0",
    "target org.example:orders",
    "routing org.example:orders",
    "instances on n1, n2",
  ]);
  deepStrictEqual(usersOf(state, "org.example:orders:1.1.0"), [
    "blueprint org.example:other:1.0.0",
    "routing org.example:orders",
    "instances on n3",
  ]);
  deepStrictEqual(usersOf(state, "org.example:orders:1.3.0"), []);
});

Deno.test("records: records that do not parse do not block a delete or throw", () => {
  const state = stateWith({
    "blueprints/org.example:shop:1.0.0": utf8.encode("{not json"),
    "targets/org.example:orders": utf8.encode("[1,2]"),
  });
  deepStrictEqual(usersOf(state, "org.example:orders:1.2.0"), []);
});

Deno.test("records: adding a holder keeps the record when the node is already listed", () => {
  const record = {
    manifest: {} as never,
    sha256: "a".repeat(64),
    sizeBytes: 1,
    holders: ["n1"],
    pushedAt: 1,
  };
  equal(withHolder(record, "n1"), record);
  deepStrictEqual(withHolder(record, "n2").holders, ["n1", "n2"]);
  deepStrictEqual(record.holders, ["n1"], "the original is not changed");
});
