/**
 * Worker isolation: a slice's Worker shares the node's standard output (where the node's ready line goes) and
 * standard error (its log). In a child process hosting the isolation slice, the slice writes to them every
 * way it knows (also `node:fs` on descriptors 1 and 2, and reads descriptor 0); nothing of it may reach the
 * child's stdout or stderr: `Deno.stdout`/`Deno.stderr` and console output become the slice's log lines,
 * other writers fail.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { writeBuiltSlice } from "../authoring/mod.ts";
import { fixture, fixturePath } from "./_testing.ts";

Deno.test("[worker] stdio: a slice cannot write to the node's stdout or stderr; its writes become log lines", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeBuiltSlice(dir, await fixture("isolation"));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-worker-options", fixturePath("stdout_host.ts"), dir],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert(out.success, stderr);
    assert(!stderr.includes("FORGED"), `the slice reached stderr:\n${stderr}`);
    // The host's report is the only line: the slice's writes show only inside it (as its log lines).
    const lines = stdout.trim().split("\n");
    assertEquals(lines.length, 1, `the slice reached stdout:\n${stdout}`);
    const report = JSON.parse(lines[0]);
    assertEquals(report.ping.ok, true);
    const seen = report.outcome.value;
    for (const writer of ["processStdout", "fsWriteSync1", "fsWriteSync2", "fsWrite1", "fsReadSync0"]) {
      assertEquals(seen[writer]?.startsWith("denied"), true, `${writer}: ${JSON.stringify(seen)}`);
    }
    for (const line of ["FORGED Deno.stdout", "FORGED Deno.stdout.write", "FORGED console.log"]) {
      assert(report.logs.includes(`info ${line}`), `${line} not logged: ${JSON.stringify(report.logs)}`);
    }
    assert(report.logs.includes("warn FORGED Deno.stderr"), JSON.stringify(report.logs));
    assert(report.logs.includes("info FORGED console.log outside a call"), JSON.stringify(report.logs));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
