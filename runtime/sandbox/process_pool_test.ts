import { deepStrictEqual as assertEquals, notStrictEqual } from "node:assert/strict";
import { discard, ProcessPool } from "./_process_channel.ts";
import { processAlive } from "./_testing.ts";
import type { PermissionGrant } from "./policy.ts";

const NONE: PermissionGrant = { net: [], env: [], denied: [] };
const NET: PermissionGrant = { net: ["api.example.com:443"], env: [], denied: [] };

Deno.test({
  name: "process pool: the next instance with the same grant takes a warm child; close() ends the rest",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const pool = new ProcessPool(2);
    const first = pool.take(NONE, 128); // nothing warm yet: a fresh child, and a warm one behind it
    const [warm] = pool.warmPids();
    notStrictEqual(warm, first.child.pid);
    const second = pool.take(NONE, 128);
    assertEquals(second.child.pid, warm, "the warm child was handed out");
    const third = pool.take(NET, 128); // another grant has its own warm child
    assertEquals(pool.warmPids().length, 2);
    const fourth = pool.take(NONE, 256); // a third kind evicts the oldest warm child
    assertEquals(pool.warmPids().length, 2);
    const warmNow = pool.warmPids();
    await pool.close();
    assertEquals(pool.warmPids(), []);
    await Promise.all([first, second, third, fourth].map(discard));
    for (const pid of [...warmNow, first.child.pid, second.child.pid]) assertEquals(processAlive(pid), false);
    // After close nothing new is kept warm.
    const late = pool.take(NONE, 128);
    assertEquals(pool.warmPids(), []);
    await discard(late);
  },
});
