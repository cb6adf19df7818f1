/**
 * Sandbox limits (issue 15, item 11) on a real node process (fixture tests/fixtures/resources/big.ts):
 * - in both sandbox modes, an answer over the response size limit: a 200 MB answer gets a 500 problem naming
 *   the slice, the method and the limit, at once; an answer under the limit goes through; the instance keeps
 *   serving;
 * - on a node in worker isolation, a slice not marked trusted runs in a process of its own: a fork bomb of
 *   Workers, a 200 MB answer and an unbounded allocation leave the node's own memory within a stated bound,
 *   and a CPU hog over the CPU budget its blueprint sets (`callCpuMs`) is stopped, answered and reported.
 */

import { equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

const SLICE = "org.example.resources:big";

async function answer(node: NodeProcess, chars: number) {
  const startedAt = Date.now();
  const response = await fetch(node.httpUrl + "/big/answer", {
    method: "POST",
    body: JSON.stringify({ chars }),
    headers: { "content-type": "application/json", "x-aether-timeout-ms": "20000" },
  });
  const text = await response.text();
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    text,
    ms: Date.now() - startedAt,
  };
}

async function ping(node: NodeProcess): Promise<boolean> {
  try {
    const response = await fetch(node.httpUrl + "/big/ping", { signal: AbortSignal.timeout(6_000) });
    return response.status === 200 && (await response.text()).includes("pong");
  } catch {
    return false;
  }
}

for (const mode of ["process", "worker"] as const) {
  Deno.test(`[${mode}] slice resources: a 200 MB answer is a 500 problem naming the slice, method and limit`, async () => {
    // Worker isolation is for trusted slices: this node trusts every slice, to test the Worker's own cap.
    const trust = mode === "worker" ? ["--trust-all-slices"] : [];
    const cluster = await TestCluster.start(1, { extraArgs: ["--sandbox", mode, ...trust] });
    try {
      const [n1] = cluster.nodes;
      await cluster.waitForLeader();
      await pushArtifact(
        n1,
        await buildSlice(new URL("../fixtures/resources/big.ts", import.meta.url).pathname),
      );
      const { status, body } = await n1.json("/api/v1/deploy", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ artifact: `${SLICE}:1.0.0`, instances: 1 }),
      });
      ok(status === 200 || status === 201, `deploy: ${status} ${JSON.stringify(body)}`);
      await cluster.waitFor("/big serves", async () => (await ping(n1)) || null, 60_000).catch((e) => {
        throw new Error(`${e.message}\n${cluster.logs().slice(-6000)}`);
      });

      const big = await answer(n1, 200_000_000);
      equal(big.status, 500, big.text.slice(0, 300));
      equal(big.type, "application/problem+json");
      const problem = JSON.parse(big.text);
      equal(problem.title, "ResponseTooLarge", big.text);
      equal(problem.method, "answer");
      equal(problem.details.maxResponseBytes, 16 * 1024 * 1024);
      for (
        const fragment of [
          "org.example.resources:big:1.0.0",
          '"answer"',
          "16777216 bytes",
          "maxResponseBytes",
        ]
      ) {
        ok(problem.detail.includes(fragment), `${problem.detail} does not mention ${fragment}`);
      }
      const fits = await answer(n1, 1_000_000);
      equal(fits.status, 200);
      equal(JSON.parse(fits.text).text.length, 1_000_000);
      ok(await ping(n1), "the instance keeps serving");
      const slice = (await sliceStatuses(n1)).find((s) => s.slice === SLICE);
      equal(slice?.active, 1, JSON.stringify(slice));
      console.log(`${mode}: 200 MB answer refused in ${big.ms} ms; 1 MB answer in ${fits.ms} ms`);
    } finally {
      await cluster.close();
    }
  });
}

/** Resident memory of process `pid` in MiB (VmRSS). */
function rssMib(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** The parent of process `pid` (field 4 of /proc/<pid>/stat, counted after the command's last ")"). */
function parentOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

interface InstanceOnNode {
  instance: string;
  state: string;
  pid?: number;
  isolation?: string;
}

async function instancesOn(node: NodeProcess): Promise<InstanceOnNode[]> {
  const { body } = await node.json<{ deployment?: { instances: InstanceOnNode[] } }>("/api/v1/status");
  return body.deployment?.instances ?? [];
}

async function post(node: NodeProcess, path: string, body: unknown) {
  try {
    const response = await fetch(node.httpUrl + path, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json", "x-aether-timeout-ms": "30000" },
      signal: AbortSignal.timeout(40_000),
    });
    return { status: response.status, text: await response.text() };
  } catch (e) {
    return { status: 0, text: String(e) };
  }
}

/** The node's own memory may grow by this much while a slice attacks it (it was 0.3 → 1.6 GB in worker isolation). */
const NODE_GROWTH_BOUND_MIB = 150;

Deno.test("[worker node, untrusted slice] a process of its own: memory attacks leave the node bounded; a CPU hog over its blueprint's budget is stopped and reported", async () => {
  const cluster = await TestCluster.start(1, { extraArgs: ["--sandbox", "worker"] });
  try {
    const [n1] = cluster.nodes;
    await cluster.waitForLeader();
    await pushArtifact(
      n1,
      await buildSlice(new URL("../fixtures/resources/big.ts", import.meta.url).pathname),
    );
    const blueprint = `id = "org.example.resources:app:1.0.0"\n\n[[slices]]\nartifact = "${SLICE}:1.0.0"\n` +
      `instances = 1\ncallCpuMs = 500\n`;
    const published = await postBlueprint(n1, blueprint);
    ok(published.status === 200 || published.status === 201, JSON.stringify(published));
    await cluster.waitFor("/big serves", async () => (await ping(n1)) || null, 60_000);

    const [instance] = await instancesOn(n1);
    equal(instance.isolation, "process", JSON.stringify(instance));
    ok(instance.pid !== undefined, JSON.stringify(instance));
    const nodePid = parentOf(instance.pid);
    const baselineMib = rssMib(nodePid);
    let peakMib = baselineMib;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peakMib = Math.max(peakMib, rssMib(nodePid));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const serves = () => cluster.waitFor("/big serves again", async () => (await ping(n1)) || null, 60_000);
    const answers: string[] = [];
    try {
      const big = await answer(n1, 200_000_000);
      equal(big.status, 500, big.text.slice(0, 300));
      answers.push(`200 MB answer: ${big.status} in ${big.ms} ms`);
      for (
        const [path, body] of [["/big/fork-bomb", { count: 126, module: "node:worker_threads" }], [
          "/big/allocate",
          {},
        ]]
      ) {
        const startedAt = Date.now();
        const outcome = await post(n1, path as string, body);
        answers.push(`${path}: ${outcome.status} in ${Date.now() - startedAt} ms`);
        await serves();
      }

      const startedAt = Date.now();
      const hog = await post(n1, "/big/burn", { ms: 20_000 });
      const hogMs = Date.now() - startedAt;
      ok(hog.status >= 500, `${hog.status} ${hog.text.slice(0, 300)}`);
      ok(hog.text.includes("limits.maxCallCpuMs"), hog.text.slice(0, 500));
      ok(hogMs < 15_000, `the hog was answered after ${hogMs} ms`);
      answers.push(`CPU hog: ${hog.status} in ${hogMs} ms`);
      await cluster.waitFor("/api/v1/slices to report the CPU budget", async () => {
        const text = JSON.stringify(await sliceStatuses(n1));
        return text.includes("limits.maxCallCpuMs") ? text : null;
      }, 20_000);
      await serves();
    } finally {
      sampling = false;
      await sampler;
    }
    const grewMib = peakMib - baselineMib;
    console.log(
      `node RSS ${baselineMib.toFixed(0)} MiB, peak ${peakMib.toFixed(0)} MiB; ${answers.join("; ")}`,
    );
    ok(grewMib < NODE_GROWTH_BOUND_MIB, `the node grew by ${grewMib.toFixed(0)} MiB`);
    ok(await ping(n1), "the slice serves after every attack");
  } finally {
    await cluster.close();
  }
});

Deno.test("[process] slice resources: over its blueprint's soft CPU limit an instance finishes its call, is retired and replaced; /api/v1/slices says why", async () => {
  const cluster = await TestCluster.start(1);
  try {
    const [n1] = cluster.nodes;
    await cluster.waitForLeader();
    await pushArtifact(
      n1,
      await buildSlice(new URL("../fixtures/resources/big.ts", import.meta.url).pathname),
    );
    const blueprint = `id = "org.example.resources:soft:1.0.0"\n\n[[slices]]\nartifact = "${SLICE}:1.0.0"\n` +
      `cpuSoftShare = 0.05\ncpuHardShare = 0\ncpuWindowMs = 1000\ncallCpuMs = 0\n`;
    const published = await postBlueprint(n1, blueprint);
    ok(published.status === 200 || published.status === 201, JSON.stringify(published));
    await cluster.waitFor("/big serves", async () => (await ping(n1)) || null, 60_000);
    const [before] = await instancesOn(n1);

    // The call is answered in full: retirement waits for the calls in flight.
    const burned = await post(n1, "/big/burn", { ms: 6_000 });
    equal(burned.status, 200, burned.text.slice(0, 300));
    const reported = await cluster.waitFor("/api/v1/slices to report the retirement", async () => {
      const text = JSON.stringify(await sliceStatuses(n1));
      return /over its soft limit of 5%.*retired after its current calls/.test(text) ? text : null;
    }, 30_000);
    await cluster.waitFor("a replacement ACTIVE", async () => {
      const instances = await instancesOn(n1);
      return instances.some((i) => i.state === "ACTIVE" && i.pid !== before.pid) || null;
    }, 60_000);
    ok(await ping(n1), "the replacement serves");
    const logs = cluster.logs();
    ok(logs.includes("instance retiring"), "no log line for the retirement");
    console.log(`retired and replaced: ${reported.slice(0, 300)}`);
  } finally {
    await cluster.close();
  }
});
