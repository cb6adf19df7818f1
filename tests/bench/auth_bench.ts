/**
 * The cost of checking a token on every management API request, on a real single-member node in this
 * process (its KV, its token index fed by the KV watch):
 *
 *   npx -y deno@2.9.6 run -A --unstable-worker-options tests/bench/auth_bench.ts [iterations=200000]
 *
 * 1. `TokenIndex.verify`: parse, sha-256 of the secret, constant-time compare, role, expiry (µs per call).
 * 2. A request through Hono (`app.request`, no sockets) with the auth middleware and without it, same handler:
 *    the difference is what auth adds to a request; the ratio compares the two.
 * The target is < 2 µs per verification.
 */

import { Hono } from "hono";
import { createLogger } from "../../runtime/core/log.ts";
import { authMiddleware, sha256Hex, TokenIndex } from "../../runtime/api/mod.ts";
import { encodeJson, tokenKey } from "../../runtime/model/mod.ts";
import { parseNodeFlags } from "../../runtime/node/flags.ts";
import { startNode } from "../../runtime/node/node.ts";

const ITERATIONS = Number(Deno.args[0] ?? 200_000);
const SECRET = "auth-bench-cluster-secret";

function timeUs(iterations: number, run: () => void): number {
  for (let i = 0; i < Math.min(10_000, iterations); i++) run();
  const started = performance.now();
  for (let i = 0; i < iterations; i++) run();
  return ((performance.now() - started) * 1000) / iterations;
}

async function timeAsyncUs(iterations: number, run: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(5_000, iterations); i++) await run();
  const started = performance.now();
  for (let i = 0; i < iterations; i++) await run();
  return ((performance.now() - started) * 1000) / iterations;
}

const dataDir = await Deno.makeTempDir({ prefix: "aether-auth-bench-" });
await Deno.writeTextFile(`${dataDir}.secret`, SECRET);
const flags = parseNodeFlags([
  ...["--id", "n1", "--peers", "n1@127.0.0.1:0", "--data-dir", dataDir, "--secret-file", `${dataDir}.secret`],
  ...["--api-port", "0", "--http-port", "0", "--log-level", "error", "--fsync", "never"],
]);
const log = createLogger({ level: "error" });
const node = await startNode(flags, new TextEncoder().encode(SECRET), log);
try {
  while (!node.core.isLeader()) await new Promise((r) => setTimeout(r, 50));
  const id = "benchtoken01";
  const secret = "s".repeat(43);
  await node.core.kv.write({
    type: "put",
    key: tokenKey(id),
    value: encodeJson({
      id,
      name: "bench",
      role: "operator",
      secretSha256: sha256Hex(secret),
      createdAt: Date.now(),
    }),
  });
  const index = new TokenIndex(node.core.kv, log);
  await index.synced;
  while (!index.get(id)) await new Promise((r) => setTimeout(r, 10));
  const token = `aether_${id}_${secret}`;

  const verifyUs = Math.min(
    ...[0, 1, 2].map(() =>
      timeUs(ITERATIONS, () => {
        if ("code" in index.verify(token)) throw new Error("refused");
      })
    ),
  );
  // The first request of a token (or one with a wrong secret) hashes: measured with a fresh index each time.
  const hashUs = timeUs(ITERATIONS, () => sha256Hex(secret));

  const handler = (app: Hono) => app.get("/api/v1/status", (c) => c.text("ok"));
  const withAuth = new Hono();
  withAuth.use("*", authMiddleware(index, { hostNames: ["127.0.0.1"] }));
  handler(withAuth);
  const withoutAuth = new Hono();
  handler(withoutAuth);
  // What any middleware costs in Hono (its compose path), apart from what the auth check does.
  const withNoop = new Hono();
  withNoop.use("*", async (_c, next) => {
    await next();
  });
  handler(withNoop);
  const request = () =>
    new Request("http://127.0.0.1:8080/api/v1/status", { headers: { authorization: `Bearer ${token}` } });
  const requests = Math.max(1, Math.floor(ITERATIONS / 4));
  // Alternated, best of three each: a busy machine slows whichever happens to run during a burst.
  let plainUs = Infinity, authUs = Infinity, noopUs = Infinity;
  for (let round = 0; round < 3; round++) {
    noopUs = Math.min(
      noopUs,
      await timeAsyncUs(requests, () => Promise.resolve(withNoop.request(request()))),
    );
    plainUs = Math.min(
      plainUs,
      await timeAsyncUs(requests, () => Promise.resolve(withoutAuth.request(request()))),
    );
    authUs = Math.min(
      authUs,
      await timeAsyncUs(requests, () => Promise.resolve(withAuth.request(request()))),
    );
  }
  const check = await withAuth.request(request());
  if (check.status !== 200) throw new Error(`the authenticated request answered ${check.status}`);

  console.log(
    `TokenIndex.verify: ${
      verifyUs.toFixed(2)
    } µs per call (${ITERATIONS} calls, best of 3; target < 2 µs); ` +
      `a token's first check or a wrong secret adds one sha-256: ${hashUs.toFixed(2)} µs`,
  );
  console.log(
    `request through Hono: ${plainUs.toFixed(2)} µs without auth, ${authUs.toFixed(2)} µs with auth ` +
      `(+${(authUs - plainUs).toFixed(2)} µs, ratio ${
        (authUs / plainUs).toFixed(2)
      }x; ${requests} requests each, best of 3); with a middleware that does nothing: ${
        noopUs.toFixed(2)
      } µs`,
  );
  index.stop();
} finally {
  await node.stop();
  await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  await Deno.remove(`${dataDir}.secret`).catch(() => {});
}
