import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { CpuWindow, processCpuMs } from "./_cpu_watch.ts";

Deno.test("cpu watch: the share is answered once the samples span the window, over that window only", () => {
  const window = new CpuWindow(1_000);
  assertEquals(window.add(0, 0), undefined);
  assertEquals(window.add(500, 500), undefined);
  assertEquals(window.add(1_000, 1_000), 1); // busy all the time
  assertEquals(window.add(1_500, 1_000), 0.5); // idle for the last half second
  assertEquals(window.add(2_000, 1_000), 0); // idle for a whole window
  for (let t = 2_100; t < 60_000; t += 100) window.add(t, 1_000);
  assert(window.size <= 12, `${window.size} samples kept for a window of 10 intervals`);
});

Deno.test("cpu watch: this process's CPU time grows while it computes", () => {
  const before = processCpuMs(Deno.pid);
  assert(before !== undefined && before >= 0, `no CPU time read for ${Deno.pid}`);
  // Computes until 100 ms of CPU are counted: on a loaded machine that takes longer than 100 ms of wall time.
  const startedMs = Date.now();
  let after = before;
  while (after - before < 100 && Date.now() - startedMs < 20_000) {
    const until = Date.now() + 20;
    while (Date.now() < until) {
      // busy
    }
    after = processCpuMs(Deno.pid)!;
  }
  assert(after - before >= 100, `only ${after - before} ms of CPU counted in ${Date.now() - startedMs} ms`);
  assertEquals(processCpuMs(2 ** 22 + 17), undefined);
});
