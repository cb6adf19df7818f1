/**
 * Management API access control against a real node: every route has a role in the one table
 * (runtime/api/roles.ts), every endpoint × role answers 401 / 403 / allowed as the table says, tokens are
 * created, listed, revoked and expire, foreign Host and Origin headers are refused, and a new cluster prints
 * its first admin token once.
 */

import { deepStrictEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { AuditLog, ENDPOINT_ROLES, type EndpointEntry, TokenIndex } from "../../runtime/api/mod.ts";
import { createLogger } from "../../runtime/core/log.ts";
import { ROLES } from "../../runtime/model/mod.ts";
import { parseNodeFlags } from "../../runtime/node/flags.ts";
import { rejects, throws } from "node:assert/strict";
import { startNode } from "../../runtime/node/node.ts";
import { NodeProcess, TestCluster } from "../_support/cluster.ts";
import { startInProcessNode } from "../_support/in_process_node.ts";

const SECRET = "auth-test-cluster-secret";

async function call(
  url: string,
  init: RequestInit & { token?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> | null; headers: Headers }> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  const response = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(10_000) });
  const type = response.headers.get("content-type") ?? "";
  if (type.includes("event-stream")) {
    await response.body?.cancel();
    return { status: response.status, body: null, headers: response.headers };
  }
  const text = await response.text();
  let body: Record<string, unknown> | null = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  return { status: response.status, body, headers: response.headers };
}

async function createToken(api: string, admin: string, name: string, role: string, ttl?: string) {
  const created = await call(`${api}/api/v1/tokens`, {
    method: "POST",
    token: admin,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, role, ...(ttl ? { ttl } : {}) }),
  });
  equal(created.status, 201, JSON.stringify(created.body));
  return created.body as { id: string; token: string; role: string; expiresAt: string | null };
}

/** A concrete path for a table pattern (parameters filled with harmless values). */
function concrete(entry: EndpointEntry): string {
  return entry.path.replace(/:[a-zA-Z]+/g, "x1y2").replace("*", "app/auth-test");
}

Deno.test("auth: every route of the management API has a role in the table, and every entry is routed", async () => {
  const n = await startInProcessNode();
  try {
    const routed = new Set(n.node.apiRoutes.map((r) => `${r.method} ${r.path}`));
    const listed = new Set(ENDPOINT_ROLES.map((e) => `${e.method} ${e.path}`));
    const unlisted = [...routed].filter((r) => !listed.has(r));
    deepStrictEqual(unlisted, [], `routes without a role in runtime/api/roles.ts: ${unlisted.join(", ")}`);
    const unrouted = [...listed].filter((r) => !routed.has(r));
    deepStrictEqual(
      unrouted,
      [],
      `roles.ts lists endpoints the router does not serve: ${unrouted.join(", ")}`,
    );
  } finally {
    await n.close();
  }
});

Deno.test("auth: every endpoint × role: 401 without a token, 403 below its role, allowed at it", async () => {
  const n = await startInProcessNode();
  try {
    const tokens: Record<string, string> = { admin: n.admin };
    for (const role of ["viewer", "operator"]) {
      tokens[role] = (await createToken(n.api, n.admin, role, role)).token;
    }
    for (const entry of ENDPOINT_ROLES) {
      const url = n.api + concrete(entry);
      const what = `${entry.method} ${entry.path} (${entry.role})`;
      const bare = await call(url, { method: entry.method });
      if (entry.role === "open") {
        ok(bare.status !== 401 && bare.status !== 403, `${what} is open but answered ${bare.status}`);
        continue;
      }
      equal(bare.status, 401, `${what} without a token`);
      equal(bare.headers.get("content-type"), "application/problem+json", what);
      equal(bare.body?.roleNeeded, entry.role, `${what}: the 401 names the role needed`);
      for (const role of ROLES) {
        const answer = await call(url, { method: entry.method, token: tokens[role] });
        if (ROLES.indexOf(role) < ROLES.indexOf(entry.role)) {
          equal(answer.status, 403, `${what} with a ${role} token: ${JSON.stringify(answer.body)}`);
          equal(answer.body?.roleNeeded, entry.role, what);
          match(String(answer.body?.detail), new RegExp(`needs role ${entry.role}`), what);
        } else {
          ok(
            answer.status !== 401 && answer.status !== 403,
            `${what} with a ${role} token answered ${answer.status}: ${JSON.stringify(answer.body)}`,
          );
        }
      }
    }
    // A wrong secret, a malformed header, an unlisted path: all 401 without a valid token.
    const [, id] = /^aether_([a-z0-9]+)_/.exec(n.admin)!;
    equal((await call(`${n.api}/api/v1/status`, { token: `aether_${id}_${"A".repeat(43)}` })).status, 401);
    equal((await call(`${n.api}/api/v1/status`, { headers: { authorization: n.admin } })).status, 401);
    equal((await call(`${n.api}/api/v1/no-such-thing`)).status, 401);
    equal((await call(`${n.api}/api/v1/no-such-thing`, { token: tokens.viewer })).status, 404);
  } finally {
    await n.close();
  }
});

Deno.test("auth: tokens are created once-shown, listed without secrets, revoked and expire", async () => {
  const n = await startInProcessNode();
  try {
    const ci = await createToken(n.api, n.admin, "ci pipeline", "operator", "90d");
    match(ci.token, /^aether_[a-z0-9]+_[A-Za-z0-9_-]{43}$/);
    ok(ci.expiresAt && Date.parse(ci.expiresAt) > Date.now() + 89 * 86_400_000);
    const me = await call(`${n.api}/api/v1/whoami`, { token: ci.token });
    deepStrictEqual(me.body, { tokenId: ci.id, tokenName: "ci pipeline", role: "operator" });
    const list = await call(`${n.api}/api/v1/tokens`, { token: n.admin });
    const text = JSON.stringify(list.body);
    ok(!text.includes(/^aether_[a-z0-9]+_(.+)$/.exec(ci.token)![1]) && !text.includes("secretSha256"), text);
    deepStrictEqual(
      (list.body!.items as { id: string; role: string; state: string }[]).map((t) => [t.role, t.state]),
      [["admin", "active"], ["operator", "active"]],
    );
    // Revoked: refused by the node at once (the index follows the KV watch).
    const revoked = await call(`${n.api}/api/v1/tokens/${ci.id}`, { method: "DELETE", token: n.admin });
    equal(revoked.status, 200);
    equal(revoked.body?.state, "revoked");
    const deadline = Date.now() + 5_000;
    let after = await call(`${n.api}/api/v1/status`, { token: ci.token });
    while (after.status !== 401 && Date.now() < deadline) {
      after = await call(`${n.api}/api/v1/status`, { token: ci.token });
    }
    equal(after.status, 401);
    match(String(after.body?.detail), /revoked/);
    // Bad input is named.
    const badRole = await call(`${n.api}/api/v1/tokens`, {
      method: "POST",
      token: n.admin,
      body: JSON.stringify({ name: "x", role: "root" }),
    });
    equal(badRole.status, 400);
    match(String(badRole.body?.detail), /field role: "root" is not viewer, operator, admin/);
    const badTtl = await call(`${n.api}/api/v1/tokens`, {
      method: "POST",
      token: n.admin,
      body: JSON.stringify({ name: "x", role: "viewer", ttl: "forever" }),
    });
    equal(badTtl.status, 400);
    match(String(badTtl.body?.detail), /field ttl/);
    // An operator cannot make tokens (admin only), so it cannot give itself admin.
    const op = await createToken(n.api, n.admin, "op", "operator");
    const escalate = await call(`${n.api}/api/v1/tokens`, {
      method: "POST",
      token: op.token,
      body: JSON.stringify({ name: "me", role: "admin" }),
    });
    equal(escalate.status, 403);
    // Expiry: a one-minute token is accepted now; its record says when it stops.
    const short = await createToken(n.api, n.admin, "short", "viewer", "1m");
    equal((await call(`${n.api}/api/v1/status`, { token: short.token })).status, 200);
    ok(Date.parse(short.expiresAt!) - Date.now() <= 60_000);
    // Two minutes later (a node's index with its clock moved on) it is refused, naming when it expired.
    const later = new TokenIndex(n.node.core.kv, createLogger({ level: "error" }), {
      now: () => Date.now() + 120_000,
    });
    try {
      await later.synced;
      const refused = later.verify(short.token);
      ok("code" in refused, "an expired token is refused");
      match((refused as Error).message, new RegExp(`token ${short.id} expired at 20`));
      ok(!("code" in later.verify(n.admin)), "a token without expiry still works");
    } finally {
      later.stop();
    }
  } finally {
    await n.close();
  }
});

Deno.test("auth: a foreign Host (DNS rebinding) and a foreign Origin are refused; CORS is default-deny", async () => {
  const n = await startInProcessNode([
    "--api-names",
    "aether.internal",
    "--cors-origins",
    "https://ops.example",
  ]);
  try {
    const status = `${n.api}/api/v1/status`;
    // fetch() always sends the URL's own Host: a raw request sends what a rebinding page's browser would.
    const evil = await rawGet(n.node.ports.api, "/api/v1/status", "evil.example", n.admin);
    match(evil, /^HTTP\/1\.1 403/);
    match(evil, /Host \\"evil\.example\\" is not a name of this API/);
    match(
      await rawGet(n.node.ports.api, "/api/v1/status", "aether.internal:8080", n.admin),
      /^HTTP\/1\.1 200/,
    );
    match(await rawGet(n.node.ports.api, "/api/v1/status", "localhost", n.admin), /^HTTP\/1\.1 200/);
    // A page of another site: preflight refused, and a request carrying its Origin refused too.
    const preflight = await call(status, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    equal(preflight.status, 403);
    equal(preflight.headers.get("access-control-allow-origin"), null);
    const crossSite = await call(`${n.api}/api/v1/kv/app/x`, {
      method: "PUT",
      token: n.admin,
      headers: { origin: "https://evil.example", "content-type": "text/plain" },
      body: "pwned",
    });
    equal(crossSite.status, 403);
    // A text/plain form post without the header never gets in.
    const form = await call(`${n.api}/api/v1/kv/app/x`, {
      method: "PUT",
      headers: { "content-type": "text/plain" },
      body: "pwned",
    });
    equal(form.status, 401);
    // The configured origin gets its preflight answered.
    const allowed = await call(status, {
      method: "OPTIONS",
      headers: { origin: "https://ops.example", "access-control-request-method": "GET" },
    });
    equal(allowed.status, 204);
    equal(allowed.headers.get("access-control-allow-origin"), "https://ops.example");
    match(allowed.headers.get("access-control-allow-headers") ?? "", /authorization/);
  } finally {
    await n.close();
  }
});

Deno.test("auth: health and readiness stay open; --closed-probes closes them", async () => {
  const open = await startInProcessNode();
  try {
    notEqual((await call(`${open.api}/api/v1/health`)).status, 401);
    notEqual((await call(`${open.api}/api/v1/ready`)).status, 401);
  } finally {
    await open.close();
  }
  const closed = await startInProcessNode(["--closed-probes"]);
  try {
    equal((await call(`${closed.api}/api/v1/health`)).status, 401);
    equal((await call(`${closed.api}/api/v1/ready`)).status, 401);
    equal((await call(`${closed.api}/api/v1/health`, { token: closed.admin })).status, 200);
  } finally {
    await closed.close();
  }
});

Deno.test("auth: a new cluster prints its first admin token once; a restart creates no other", async () => {
  const root = await Deno.makeTempDir({ prefix: "aether-auth-boot-" });
  await Deno.writeTextFile(`${root}/secret`, SECRET);
  const node = new NodeProcess({
    id: "n1",
    peers: "n1@127.0.0.1:0",
    dataDir: `${root}/n1`,
    secretFile: `${root}/secret`,
  });
  try {
    await node.start();
    const printed = await waitForToken(node);
    const status = await fetch(`${node.apiUrl}/api/v1/tokens`, {
      headers: { authorization: `Bearer ${printed}` },
    });
    const body = await status.json();
    equal(status.status, 200, JSON.stringify(body));
    equal(body.items.length, 1);
    equal(body.items[0].role, "admin");
    // The token is printed on standard error, never into the log ring the logs API serves.
    const logs = await fetch(`${node.apiUrl}/api/v1/logs?limit=10000`, {
      headers: { authorization: `Bearer ${printed}` },
    });
    ok(!(await logs.text()).includes(/^aether_[a-z0-9]+_(.+)$/.exec(printed)![1]));
    await node.stop();
    node.log = "";
    await node.start();
    await new Promise((r) => setTimeout(r, 1_500));
    ok(!node.log.includes("AETHER ADMIN TOKEN"), node.log);
    const again = await fetch(`${node.apiUrl}/api/v1/tokens`, {
      headers: { authorization: `Bearer ${printed}` },
    });
    equal((await again.json()).items.length, 1);
  } finally {
    await node.stop("SIGKILL");
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

/** One HTTP/1.1 GET over a plain socket, with the Host header given (fetch() would send the URL's own). */
async function rawGet(port: number, path: string, host: string, token: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const request = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\n` +
      "Connection: close\r\n\r\n";
    await conn.write(new TextEncoder().encode(request));
    return await new Response(conn.readable).text();
  } catch (e) {
    conn.close();
    throw e;
  }
}

Deno.test("auth: mutating calls are audited (who, role, what, target, status, request id); retention is bounded", async () => {
  const n = await startInProcessNode();
  try {
    const op = await createToken(n.api, n.admin, "deployer", "operator");
    const put = await call(`${n.api}/api/v1/kv/app/audited`, {
      method: "PUT",
      token: op.token,
      headers: { "x-request-id": "req-audit-1" },
      body: "v",
    });
    equal(put.status, 200);
    const refused = await call(`${n.api}/api/v1/kv/config/x`, { method: "PUT", token: op.token, body: "v" });
    equal(refused.status, 403);
    const viewer = await createToken(n.api, n.admin, "watcher", "viewer");
    equal((await call(`${n.api}/api/v1/audit`, { token: viewer.token })).status, 403);
    // A call refused for its role is recorded too (who tried what).
    equal(
      (await call(`${n.api}/api/v1/kv/app/x`, { method: "PUT", token: viewer.token, body: "v" })).status,
      403,
    );
    type Entry = {
      tokenId: string;
      tokenName: string;
      role: string;
      method: string;
      path: string;
      target: string;
      status: number;
      requestId: string;
      node: string;
    };
    let items: Entry[] = [];
    const deadline = Date.now() + 10_000;
    while (!items.some((e) => e.tokenId === viewer.id) && Date.now() < deadline) {
      items = (await call(`${n.api}/api/v1/audit?since=5m`, { token: op.token })).body!.items as Entry[];
      await new Promise((r) => setTimeout(r, 100));
    }
    const mine = items.filter((e) => e.tokenId === op.id);
    deepStrictEqual(mine.map((e) => [e.method, e.path, e.target, e.status, e.role, e.tokenName, e.node]), [
      ["PUT", "/api/v1/kv/app/audited", "app/audited", 200, "operator", "deployer", "n1"],
      ["PUT", "/api/v1/kv/config/x", "config/x", 403, "operator", "deployer", "n1"],
    ]);
    equal(mine[0].requestId, "req-audit-1");
    deepStrictEqual(
      items.filter((e) => e.tokenId === viewer.id).map((e) => [e.method, e.path, e.status, e.role]),
      [["PUT", "/api/v1/kv/app/x", 403, "viewer"]],
    );
    ok(items.some((e) => e.path === "/api/v1/tokens" && e.status === 201 && e.role === "admin"));
    // Retention: a log limited to 5 keeps the newest 5.
    const small = new AuditLog(n.node.core.kv, "n1", createLogger({ level: "error" }), 5);
    const base = Date.now() + 60_000;
    for (let i = 0; i < 12; i++) {
      small.record({ time: base + i, method: "POST", path: `/x/${i}`, status: 200, requestId: `r${i}` });
    }
    await small.flush();
    await small.prune();
    const kept = (await call(`${n.api}/api/v1/audit?limit=10000`, { token: op.token })).body!
      .items as Entry[];
    equal(kept.length, 5);
    deepStrictEqual(kept.map((e) => e.path), ["/x/7", "/x/8", "/x/9", "/x/10", "/x/11"]);
    const limited = (await call(`${n.api}/api/v1/audit?limit=2`, { token: op.token })).body!.items as Entry[];
    deepStrictEqual(limited.map((e) => e.path), ["/x/10", "/x/11"]);
    equal((await call(`${n.api}/api/v1/audit?limit=0`, { token: op.token })).status, 400);
    // The same records through the raw KV API: no way around the roles of /tokens and /audit.
    const keys = async (prefix: string, token: string) =>
      ((await call(`${n.api}/api/v1/kv?prefix=${prefix}`, { token })).body!.items as { key: string }[])
        .length;
    equal(await keys("auth/", viewer.token), 0);
    equal(await keys("auth/", op.token), 0);
    ok(await keys("auth/", n.admin) >= 4, "admin reads the token records");
    equal(await keys("audit/", viewer.token), 0);
    equal(await keys("audit/", op.token), 5);
    const all = (await call(`${n.api}/api/v1/kv?prefix=`, { token: viewer.token })).body!.items as {
      key: string;
    }[];
    ok(all.some((e) => e.key === "app/audited"), "a viewer's full listing still lists app/");
    ok(!all.some((e) => e.key.startsWith("auth/") || e.key.startsWith("audit/")), JSON.stringify(all));
    const direct = await call(`${n.api}/api/v1/kv/auth/bootstrap`, { token: op.token });
    equal(direct.status, 403);
    equal(direct.body?.roleNeeded, "admin");
    equal((await call(`${n.api}/api/v1/kv/auth/bootstrap`, { token: n.admin })).status, 200);
    small.stop();
  } finally {
    await n.close();
  }
});

Deno.test("auth: flags and the bootstrap token file are checked, naming what is wrong", async () => {
  const base = ["--id", "n1", "--peers", "n1@127.0.0.1:0", "--data-dir", "/tmp/x", "--secret-file", "/tmp/s"];
  throws(
    () => parseNodeFlags([...base, "--cors-origins", "evil"]),
    /--cors-origins: "evil" is not a valid entry/,
  );
  throws(() => parseNodeFlags([...base, "--api-names", "a b"]), /--api-names: "a b" is not a valid entry/);
  const flags = parseNodeFlags([...base, "--api-names", "a.example, b.example", "--closed-probes"]);
  deepStrictEqual([flags.apiNames, flags.closedProbes, flags.corsOrigins], [
    ["a.example", "b.example"],
    true,
    [],
  ]);
  const dataDir = await Deno.makeTempDir({ prefix: "aether-auth-badfile-" });
  await Deno.writeTextFile(`${dataDir}.token`, "not-a-token");
  try {
    const bad = parseNodeFlags([
      ...["--id", "n1", "--peers", "n1@127.0.0.1:0", "--data-dir", dataDir, "--secret-file", "/unused"],
      ...["--api-port", "0", "--http-port", "0", "--bootstrap-token-file", `${dataDir}.token`],
    ]);
    await rejects(
      startNode(bad, new TextEncoder().encode(SECRET), createLogger({ level: "error" })),
      /--bootstrap-token-file: the file does not hold a token of the form aether_<id>_<secret>/,
    );
    const missing = { ...bad, bootstrapTokenFile: `${dataDir}.none` };
    await rejects(
      startNode(missing, new TextEncoder().encode(SECRET), createLogger({ level: "error" })),
      /--bootstrap-token-file: cannot read ".*\.none"/,
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    await Deno.remove(`${dataDir}.token`).catch(() => {});
  }
});

Deno.test("auth: three members starting together without a token file create exactly one admin token", async () => {
  const cluster = await TestCluster.create(3);
  for (const node of cluster.nodes) node.options.bootstrapTokenFile = undefined;
  try {
    await cluster.startAll();
    await cluster.waitForLeader();
    const printed = await cluster.waitFor("one node to print the admin token", () => {
      const found = cluster.nodes.flatMap((
        n,
      ) => [...n.log.matchAll(/^\s+(aether_[a-z0-9]+_[A-Za-z0-9_-]+)$/gm)]);
      return Promise.resolve(found.length > 0 ? found : null);
    });
    await new Promise((r) => setTimeout(r, 1_000));
    const all = cluster.nodes.flatMap((n) => [...n.log.matchAll(/AETHER ADMIN TOKEN/g)]);
    equal(all.length, 1, cluster.logs());
    const token = printed[0][1];
    for (const node of cluster.nodes) {
      const answer = await node.json<{ items: { role: string }[] }>("/api/v1/tokens", {
        headers: { authorization: `Bearer ${token}` },
      });
      equal(answer.status, 200, `${node.id}: ${JSON.stringify(answer.body)}`);
      deepStrictEqual(answer.body.items.map((t) => t.role), ["admin"]);
    }
  } finally {
    await cluster.close();
  }
});

async function waitForToken(node: NodeProcess): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const found = /AETHER ADMIN TOKEN[^\n]*\n\n\s+(aether_[a-z0-9]+_[A-Za-z0-9_-]+)\n/.exec(node.log);
    if (found) {
      equal(node.log.split("AETHER ADMIN TOKEN").length, 2, "printed exactly once");
      return found[1];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no admin token printed:\n${node.log}`);
}
