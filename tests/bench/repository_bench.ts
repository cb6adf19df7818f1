/**
 * Artifact repository: push-and-replicate of a 1 MiB artifact to 3 nodes, and a fetch from a peer, on 3 real
 * node processes (loopback, --fsync always), with baselines measured in the same run:
 *
 * - local durable write: 1 MiB written to a temporary file, fdatasync, rename, directory fsync (what one node
 *   does to store a blob; a push does this on 3 nodes, 2 of them in parallel after the first);
 * - raw mesh transfer: 1 MiB sent between two in-process meshes in 256 KiB messages with the same flow control
 *   (`writable`), answered by a small ack (what one replica copy costs on the wire, without hashing or disk);
 * - local download: the bundle served by a node that already holds it (HTTP + read + verify).
 *
 * Run: deno run -A tests/bench/repository_bench.ts [--pushes 15] [--fetches 10]
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { type NodeProcess, TestCluster } from "../_support/cluster.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { sha256Hex, type SliceManifest } from "../../slices/manifest.ts";
import { Mesh } from "../../runtime/net/mod.ts";
import { createLogger } from "../../runtime/core/log.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { pushes: { type: "string", default: "15" }, fetches: { type: "string", default: "10" } },
});
const PUSHES = Number(flags.pushes);
const FETCHES = Number(flags.fetches);
const SIZE = 1024 * 1024;
const CHUNK = 256 * 1024;
const FIXTURE = fileURLToPath(new URL("../integration/fixtures/repo_greeter.ts", import.meta.url));

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

const fmt = (ms: number) => `${ms.toFixed(2)} ms`;
function summary(name: string, samples: number[]): number {
  const p50 = percentile(samples, 0.5);
  console.log(
    `${name.padEnd(44)} p50 ${fmt(p50).padStart(10)}  p90 ${fmt(percentile(samples, 0.9)).padStart(10)}  ` +
      `min ${fmt(Math.min(...samples)).padStart(10)}  (n=${samples.length})`,
  );
  return p50;
}

/** A valid slice of exactly 1 MiB: the built fixture padded with a comment, at its own version. */
async function artifact(version: string): Promise<{ manifest: SliceManifest; bundle: Uint8Array }> {
  const base = await built;
  const head = new TextDecoder().decode(base.bundle) + `\n// ${version}\n/*`;
  const text = head + "x".repeat(SIZE - head.length - 2) + "*/";
  const bundle = new TextEncoder().encode(text);
  if (bundle.length !== SIZE) throw new Error(`artifact is ${bundle.length} bytes`);
  const manifest = {
    ...base.manifest,
    coordinates: `org.example.bench:blob:${version}`,
    sha256: await sha256Hex(bundle),
    sizeBytes: SIZE,
  };
  return { manifest, bundle };
}

async function push(node: NodeProcess, a: { manifest: SliceManifest; bundle: Uint8Array }, replicas: number) {
  const form = new FormData();
  form.set("manifest", JSON.stringify(a.manifest));
  form.set("bundle", new Blob([a.bundle as Uint8Array<ArrayBuffer>]));
  const response = await node.api(`/api/v1/artifacts?replicas=${replicas}`, {
    method: "POST",
    body: form,
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`push: ${response.status} ${JSON.stringify(body)}`);
  return body.record.holders as string[];
}

async function download(node: NodeProcess, coordinates: string): Promise<string> {
  const response = await node.api(`/api/v1/artifacts/${coordinates}/bundle`);
  const bytes = await response.arrayBuffer();
  if (response.status !== 200 || bytes.byteLength !== SIZE) throw new Error(`download: ${response.status}`);
  return response.headers.get("x-aether-source") ?? "?";
}

async function localDurableWrite(dir: string, samples: number): Promise<number[]> {
  const bytes = new Uint8Array(SIZE).fill(120);
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    const tmp = `${dir}/w${i}.part`;
    const file = await Deno.open(tmp, { write: true, createNew: true });
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.syncData();
    file.close();
    await Deno.rename(tmp, `${dir}/w${i}`);
    const d = await Deno.open(dir, { read: true });
    await d.sync();
    d.close();
    out.push(performance.now() - t);
  }
  return out;
}

async function rawMeshTransfer(samples: number): Promise<number[]> {
  const secret = new TextEncoder().encode("repository-bench-mesh-secret");
  const logger = createLogger({ level: "error", sink: () => {} });
  const ids = ["a", "b"];
  const meshes = ids.map((self) =>
    new Mesh({ self, peers: ids.map((id) => ({ id, host: "127.0.0.1", port: 0 })), secret, logger })
  );
  for (const m of meshes) await m.start();
  meshes[0].setPeerAddress("b", "127.0.0.1", meshes[1].port);
  meshes[1].setPeerAddress("a", "127.0.0.1", meshes[0].port);
  while (!meshes[0].isConnected("b") || !meshes[1].isConnected("a")) {
    await new Promise((r) => setTimeout(r, 5));
  }
  let received = 0;
  let ack: (() => void) | null = null;
  meshes[1].onMessage("bench", (_from, message) => {
    received += (message as { data: Uint8Array }).data.length;
    if (received >= SIZE) {
      received = 0;
      meshes[1].send("a", "bench", { ack: true });
    }
  });
  meshes[0].onMessage("bench", () => ack?.());
  const blob = new Uint8Array(SIZE).fill(7);
  const out: number[] = [];
  try {
    for (let i = 0; i < samples + 2; i++) {
      const t = performance.now();
      const acked = new Promise<void>((resolve) => ack = resolve);
      for (let offset = 0; offset < SIZE; offset += CHUNK) {
        await meshes[0].writable("b");
        meshes[0].send("b", "bench", { data: blob.subarray(offset, offset + CHUNK) });
      }
      await acked;
      if (i >= 2) out.push(performance.now() - t); // the first two warm up the codec and the socket
    }
  } finally {
    await Promise.all(meshes.map((m) => m.stop()));
  }
  return out;
}

const built = buildSlice(FIXTURE);
console.log(`repository bench: ${PUSHES} pushes and ${FETCHES} peer fetches of a 1 MiB artifact, 3 nodes`);
const cluster = await TestCluster.start(3);
try {
  await cluster.waitForLeader();
  const [n1] = cluster.nodes;
  // Warm-up: the first upload compiles paths in every node.
  await push(n1, await artifact("0.0.0"), 3);

  const pushTimes: number[] = [];
  for (let i = 1; i <= PUSHES; i++) {
    const a = await artifact(`1.0.${i}`);
    const t = performance.now();
    const holders = await push(n1, a, 3);
    pushTimes.push(performance.now() - t);
    if (holders.length !== 3) throw new Error(`holders ${holders}`);
  }

  const fetchTimes: number[] = [];
  const localTimes: number[] = [];
  for (let i = 1; i <= FETCHES; i++) {
    const a = await artifact(`2.0.${i}`);
    const holders = await push(n1, a, 2);
    const outsider = cluster.nodes.find((n) => !holders.includes(n.id))!;
    let t = performance.now();
    const source = await download(outsider, a.manifest.coordinates);
    fetchTimes.push(performance.now() - t);
    if (source === "local") throw new Error("expected a fetch from a peer");
    t = performance.now();
    if ((await download(outsider, a.manifest.coordinates)) !== "local") throw new Error("not stored");
    localTimes.push(performance.now() - t);
  }

  const fsyncTimes = await localDurableWrite(await Deno.makeTempDir({ dir: cluster.root }), PUSHES);
  const meshTimes = await rawMeshTransfer(PUSHES);

  console.log("");
  const pushP50 = summary("push 1 MiB, replicated to 3 nodes (HTTP)", pushTimes);
  const fetchP50 = summary("download from a node without it (peer fetch)", fetchTimes);
  const localP50 = summary("download from a node holding it (baseline)", localTimes);
  const fsyncP50 = summary("local durable write of 1 MiB (baseline)", fsyncTimes);
  const meshP50 = summary("raw mesh transfer of 1 MiB + ack (baseline)", meshTimes);
  console.log("");
  console.log(`push p50 / local durable write p50      ${(pushP50 / fsyncP50).toFixed(1)}x`);
  console.log(`push p50 / raw mesh transfer p50        ${(pushP50 / meshP50).toFixed(1)}x`);
  console.log(`peer fetch p50 / local download p50     ${(fetchP50 / localP50).toFixed(1)}x`);
  console.log(`peer fetch p50 / raw mesh transfer p50  ${(fetchP50 / meshP50).toFixed(1)}x`);
} finally {
  await cluster.close();
}
