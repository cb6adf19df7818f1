/**
 * An answer over the sandbox's response size limit (issue 15, item 11) on a real node process, in both sandbox
 * modes: a 200 MB answer gets a 500 problem naming the slice, the method and the limit, at once; an answer
 * under the limit goes through; the instance keeps serving (fixture tests/fixtures/resources/big.ts).
 */

import { equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, sliceStatuses } from "../_support/deployment.ts";
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
    const cluster = await TestCluster.start(1, { extraArgs: ["--sandbox", mode] });
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
      await cluster.waitFor("/big serves", async () => (await ping(n1)) || null, 60_000);

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
