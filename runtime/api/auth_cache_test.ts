/**
 * TokenIndex remembers verified whole tokens (so a repeated token costs a map lookup, not a hash). These tests
 * prove the memory never outlives what it stands for: a revoke, a deleted record, a new secret under the same
 * id and an expiry each refuse the very next request, and a wrong secret is never let through by a remembered
 * token of the same id. The index is fed by a real KV state machine and watch hub (one member, no consensus:
 * a write is applied and published at once, as a replica does after its decision).
 */

import { equal, ok } from "node:assert/strict";
import { AetherError, createLogger } from "../core/mod.ts";
import { type KvAccess, kvAccess, type Replica } from "../cluster/mod.ts";
import { type KvCommand, type KvEvent, KvState, WatchHub } from "../kv/mod.ts";
import { encodeJson, tokenKey, type TokenRecord } from "../model/mod.ts";
import { Hono } from "hono";
import { authMiddleware, callerOf, MAX_VERIFIED_TOKENS, sha256Hex, TokenIndex } from "./auth.ts";
import { RoleTable } from "./roles.ts";

/** A one-member store: commands applied to a real KvState, their events published on a real WatchHub. */
function oneMemberKv(): { kv: KvAccess; close(): void } {
  const state = new KvState();
  const hub = new WatchHub({ revision: state.revision });
  const replica = {
    state,
    write(command: KvCommand) {
      const events: KvEvent[] = [];
      const result = state.apply(command, events);
      hub.publish(events);
      return Promise.resolve(result);
    },
  } as unknown as Replica;
  return { kv: kvAccess(replica, hub, 1_000), close: () => hub.close() };
}

const SECRET = "a".repeat(43);
const OTHER_SECRET = "b".repeat(43);

function record(id: string, secret: string, extra: Partial<TokenRecord> = {}): TokenRecord {
  return {
    id,
    name: `token ${id}`,
    role: "operator",
    secretSha256: sha256Hex(secret),
    createdAt: 1,
    ...extra,
  };
}

async function put(kv: KvAccess, value: TokenRecord): Promise<void> {
  await kv.write({ type: "put", key: tokenKey(value.id), value: encodeJson(value) });
}

/** Waits (bounded) until the index's watch has applied what was just written. */
async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function withIndex(
  run: (kv: KvAccess, index: TokenIndex, clock: { nowMs: number }) => Promise<void>,
): Promise<void> {
  const store = oneMemberKv();
  const clock = { nowMs: 1_000 };
  const index = new TokenIndex(store.kv, createLogger({ level: "error", sink: () => {} }), {
    now: () => clock.nowMs,
  });
  try {
    await index.synced;
    await run(store.kv, index, clock);
  } finally {
    index.stop();
    store.close();
  }
}

function refusal(result: unknown): string {
  ok(result instanceof AetherError, `expected a refusal, got ${JSON.stringify(result)}`);
  equal(result.code, "unauthorized");
  return result.message;
}

Deno.test("auth cache: a repeated token answers the same caller object; a revoke refuses the next request", async () => {
  await withIndex(async (kv, index) => {
    await put(kv, record("tok1", SECRET));
    await until("the record", () => index.get("tok1") !== undefined);
    const first = index.verify(`aether_tok1_${SECRET}`);
    ok(!(first instanceof AetherError));
    equal(first.role, "operator");
    equal(index.verify(`aether_tok1_${SECRET}`), first, "the remembered caller");
    await put(kv, record("tok1", SECRET, { revokedAt: 2 }));
    await until("the revoke", () => index.get("tok1")?.revokedAt !== undefined);
    ok(refusal(index.verify(`aether_tok1_${SECRET}`)).includes("revoked"));
  });
});

Deno.test("auth cache: a deleted record or a new secret under the same id refuses the remembered token", async () => {
  await withIndex(async (kv, index) => {
    await put(kv, record("tok2", SECRET));
    await put(kv, record("tok3", SECRET));
    await until("the records", () => index.get("tok3") !== undefined);
    ok(!(index.verify(`aether_tok2_${SECRET}`) instanceof AetherError));
    ok(!(index.verify(`aether_tok3_${SECRET}`) instanceof AetherError));
    await kv.write({ type: "delete", key: tokenKey("tok2") });
    await until("the delete", () => index.get("tok2") === undefined);
    ok(refusal(index.verify(`aether_tok2_${SECRET}`)).includes("not known"));
    await put(kv, record("tok3", OTHER_SECRET));
    await until("the new secret", () => index.get("tok3")?.secretSha256 === sha256Hex(OTHER_SECRET));
    ok(refusal(index.verify(`aether_tok3_${SECRET}`)).includes("not known"));
    ok(!(index.verify(`aether_tok3_${OTHER_SECRET}`) instanceof AetherError));
  });
});

Deno.test("auth cache: a remembered token stops working the moment it expires", async () => {
  await withIndex(async (kv, index, clock) => {
    await put(kv, record("tok4", SECRET, { expiresAt: 5_000 }));
    await until("the record", () => index.get("tok4") !== undefined);
    ok(!(index.verify(`aether_tok4_${SECRET}`) instanceof AetherError));
    clock.nowMs = 4_999;
    ok(!(index.verify(`aether_tok4_${SECRET}`) instanceof AetherError));
    clock.nowMs = 5_000;
    ok(refusal(index.verify(`aether_tok4_${SECRET}`)).includes("expired"));
  });
});

Deno.test("auth cache: a wrong secret is refused while the right one is remembered; only valid tokens are kept", async () => {
  await withIndex(async (kv, index) => {
    await put(kv, record("tok5", SECRET));
    await until("the record", () => index.get("tok5") !== undefined);
    ok(!(index.verify(`aether_tok5_${SECRET}`) instanceof AetherError));
    // Far more wrong secrets than the memory holds: each is hashed and refused, none displaces anything.
    for (let i = 0; i < MAX_VERIFIED_TOKENS + 10; i++) {
      refusal(index.verify(`aether_tok5_${String(i).padStart(43, "c")}`));
    }
    ok(!(index.verify(`aether_tok5_${SECRET}`) instanceof AetherError));
    refusal(index.verify(`aether_tok5_${SECRET} `)); // the exact string: a near miss is checked in full
    refusal(index.verify("Bearer nonsense"));
  });
});

Deno.test("auth middleware: remembered Host verdicts and tokens still refuse what they must, request after request", async () => {
  await withIndex(async (kv, index) => {
    await put(kv, record("tok6", SECRET));
    await until("the record", () => index.get("tok6") !== undefined);
    const app = new Hono();
    app.use("*", authMiddleware(index, { hostNames: ["api.example"] }));
    app.get("/api/v1/status", (c) => c.text("ok"));
    // A mounted sub-app (as every route group is) sees the caller the middleware found.
    const mounted = new Hono();
    mounted.get("/whoami", (c) => c.json(callerOf(c) ?? null));
    app.route("/api/v1", mounted);
    const call = (host: string, authorization = `Bearer aether_tok6_${SECRET}`) =>
      app.request(new Request("http://x/api/v1/status", { headers: { host, authorization } }));
    for (let i = 0; i < 3; i++) {
      equal((await call("evil.example")).status, 403, `a foreign Host, request ${i}`);
      equal((await call("API.example:8080")).status, 200, `the API's own name, request ${i}`);
      equal((await call("127.0.0.1:8080")).status, 200, `an IP literal, request ${i}`);
    }
    // More distinct Host headers than are remembered: each still judged, the API's name still accepted.
    for (let i = 0; i < 200; i++) equal((await call(`h${i}.evil.example`)).status, 403);
    equal((await call("api.example")).status, 200);
    equal((await call("api.example", `Bearer  aether_tok6_${SECRET} `)).status, 200, "blanks around it");
    const whoami = await app.request(
      new Request("http://x/api/v1/whoami", { headers: { authorization: `Bearer aether_tok6_${SECRET}` } }),
    );
    equal((await whoami.json()).tokenId, "tok6");
    equal((await call("api.example", `Basic aether_tok6_${SECRET}`)).status, 401);
    await put(kv, record("tok6", SECRET, { revokedAt: 2 }));
    await until("the revoke", () => index.get("tok6")?.revokedAt !== undefined);
    const refused = await call("api.example");
    equal(refused.status, 401, "the request right after the revoke");
    ok((await refused.text()).includes("revoked"));
  });
});

Deno.test("role table: exact paths (a trailing slash, HEAD as GET) and patterns answer their entries", () => {
  const table = new RoleTable();
  equal(table.find("GET", "/api/v1/status")?.entry.role, "viewer");
  equal(table.find("GET", "/api/v1/status/")?.entry.path, "/api/v1/status");
  equal(table.find("HEAD", "/api/v1/health")?.entry.role, "open");
  equal(table.find("POST", "/api/v1/status"), undefined);
  equal(table.find("GET", "/api/v1/nothing-here"), undefined);
  const revoke = table.find("DELETE", "/api/v1/tokens/ab%2Fcd");
  equal(revoke?.entry.role, "admin");
  equal(revoke?.target, "ab/cd");
});
