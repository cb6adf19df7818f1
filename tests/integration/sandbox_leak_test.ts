/**
 * Sandboxes leave nothing behind: after every way an instance can end (unload, failure, memory kill, load
 * failure, executor shutdown) the process has the same number of Worker threads and child processes as
 * before. Counting is process-wide, so this file runs alone (tests/integration runs one file at a time).
 * Endless loops in worker isolation are the one known exception (Deno cannot stop such a Worker) and are
 * covered in runtime/sandbox/hostile_test.ts instead.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { SliceExecutor } from "../../runtime/sandbox/executor.ts";
import { SliceHost } from "../../runtime/sandbox/host.ts";
import { childProcesses, fixture, MODES, waitFor, workerThreads } from "../../runtime/sandbox/testing.ts";

async function settled(workers: number, children: number, what: string): Promise<void> {
  await waitFor(() => workerThreads() === workers && childProcesses().length === children, what, 15_000);
}

Deno.test({
  name: "sandboxes: every way an instance ends releases its worker thread or child process",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const workers = workerThreads();
    const children = childProcesses().length;
    for (const mode of MODES) {
      const ex = new SliceExecutor({
        policy: { mode, net: [], env: [], memoryLimitMb: 128 },
        trustAllSlices: true,
        deadlines: { hookMs: 500 },
        onLog: () => {},
      });
      const pricing = await fixture("pricing");
      const hostile = await fixture("hostile");
      for (const id of ["p1", "p2", "h1", "h2"]) {
        await ex.submit({ type: "LOAD", instanceId: id, artifact: id.startsWith("p") ? pricing : hostile });
        await ex.submit({ type: "ACTIVATE", instanceId: id });
      }
      assertEquals(workerThreads() - workers, mode === "worker" ? 4 : 0);
      // Process isolation: four sandboxes and the executor's warm children for the next LOADs (the pool refills
      // in the background, so wait until it has settled on its size).
      if (mode === "process") {
        const warm = () => ex.warmProcesses().length;
        await waitFor(
          () => warm() > 0 && childProcesses().length - children === 4 + warm(),
          "four sandboxes plus the warm children",
        );
      } else {
        assertEquals(childProcesses().length - children, 0);
      }

      // A crash (Deno.exit), then the memory limit (process isolation only: a Worker would take the process down).
      await ex.invoke("h1", "exitProcess", { code: 1 }).catch(() => {});
      if (mode === "process") await ex.invoke("h2", "allocateBuffers", {}).catch(() => {});
      await waitFor(() => ex.get("h1")?.state === "FAILED", "h1 FAILED");
      if (mode === "process") await waitFor(() => ex.get("h2")?.state === "FAILED", "h2 FAILED");

      // The normal way out, and out of FAILED.
      await ex.submit({ type: "DEACTIVATE", instanceId: "p1" });
      assertEquals(await ex.submit({ type: "UNLOAD", instanceId: "p1" }), "REMOVED");
      assertEquals(await ex.submit({ type: "UNLOAD", instanceId: "h1" }), "REMOVED");

      // A load that fails (bad configuration).
      const bad = new SliceHost({
        instanceId: "bad",
        ...(await fixture("order")),
        mode,
        config: { maxQuantity: -1 },
        onLog: () => {},
      });
      await bad.load().catch(() => {});
      await bad.unload();

      // Shutdown with instances still ACTIVE (p2, and h2 in worker isolation).
      await ex.close();
      await settled(workers, children, `${mode}: every sandbox to end`);
    }
  },
});
