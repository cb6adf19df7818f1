import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { discard } from "./_process_channel.ts";
import { ProcessPool } from "./_process_pool.ts";
import { processAlive, waitFor } from "./_testing.ts";
import type { PermissionGrant } from "./policy.ts";

const NONE: PermissionGrant = { net: [], env: [], denied: [] };
const NET: PermissionGrant = { net: ["api.example.com:443"], env: [], denied: [] };
const FAST = { refillGapMs: 10, quietMs: 50 };

Deno.test({
  name: "process pool: pre-warmed children are handed out; a burst of loads sets how many are kept warm",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const pool = new ProcessPool({ maxWarm: 3, ...FAST });
    pool.prewarm(NONE, 128, 2);
    await waitFor(() => pool.warmPids().length === 2, "two pre-warmed children");
    const warm = pool.warmPids();
    // A burst of three loads: two warm children, then one started on the spot.
    const taken = [pool.take(NONE, 128), pool.take(NONE, 128), pool.take(NONE, 128)];
    assertEquals(taken.slice(0, 2).map((s) => s.child.pid), warm, "the warm children were handed out first");
    assert(!warm.includes(taken[2].child.pid), "the third was started for the load");
    assertEquals(pool.warmPids(), [], "nothing is refilled while the burst may go on");
    // After the burst the pool refills to the burst's size (3, the maximum), one child at a time.
    await waitFor(() => pool.warmPids().length === 3, "three warm children after the burst");
    const refilled = pool.warmPids();
    await pool.close();
    assertEquals(pool.warmPids(), []);
    await Promise.all(taken.map(discard));
    for (const pid of [...refilled, ...taken.map((s) => s.child.pid)]) assertEquals(processAlive(pid), false);
    // After close nothing new is kept warm.
    const late = pool.take(NONE, 128);
    await new Promise((r) => setTimeout(r, 100));
    assertEquals(pool.warmPids(), []);
    await discard(late);
  },
});

Deno.test({
  name: "process pool: grants and memory limits have their own children; the total stays at maxWarm",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const pool = new ProcessPool({ maxWarm: 2, ...FAST });
    const taken = [pool.take(NONE, 128)];
    await waitFor(() => pool.warmPids().length === 1, "a warm child for the plain grant");
    const plain = pool.warmPids()[0];
    taken.push(pool.take(NET, 128));
    await waitFor(() => pool.warmPids().length === 2, "a warm child for the net grant too");
    // A third kind: the least recently used kind (the plain grant) gives its child up.
    taken.push(pool.take(NONE, 256));
    await waitFor(
      () => pool.warmPids().length === 2 && !pool.warmPids().includes(plain),
      "the oldest kind's warm child replaced",
    );
    await waitFor(() => !processAlive(plain), "the evicted child ended");
    // The net grant's warm child goes to a load of that grant, not to another.
    const net = pool.warmPids();
    const netChild = pool.take(NET, 128);
    assert(net.includes(netChild.child.pid));
    taken.push(netChild);
    await pool.close();
    await Promise.all(taken.map(discard));
  },
});

Deno.test({
  name: "process pool: maxWarm 0 keeps nothing warm and starts a child per take",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const pool = new ProcessPool({ maxWarm: 0, ...FAST });
    pool.prewarm(NONE, 128, 2);
    const child = pool.take(NONE, 128);
    await new Promise((r) => setTimeout(r, 100));
    assertEquals(pool.warmPids(), []);
    assert(processAlive(child.child.pid));
    await pool.close();
    await discard(child);
  },
});
