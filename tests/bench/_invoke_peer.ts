/**
 * Helper process of invoke_bench.ts: one "node" of a two-node pair, with a real mesh, a SliceExecutor in
 * worker isolation and a SliceInvoker, but no consensus: both processes apply the same endpoint records (the
 * `hello` slice on n2, the `caller` slice on n1), as replication would make them. It isolates what a call
 * between slices on two processes costs in worker isolation, which the node itself does not offer as a flag.
 *
 *   n2: deno run -A --unstable-worker-options tests/bench/_invoke_peer.ts n2
 *       prints {"port": N} (its mesh port) and serves until standard input closes
 *   n1: deno run -A --unstable-worker-options tests/bench/_invoke_peer.ts n1 <n2 port> <calls> <n2 pid>
 *       runs caller.loop against n2 and prints {"port": 0, "result": {p50, p99, ..., cpuUsPerCall}}, the last
 *       being the CPU time both processes spent per call during the loop (warm-up included)
 */

import { Mesh } from "../../runtime/net/mod.ts";
import { createLogger } from "../../runtime/core/log.ts";
import { KvState } from "../../runtime/kv/state.ts";
import { encodeValue, kvKeys } from "../../runtime/model/mod.ts";
import { EndpointRegistry } from "../../runtime/deployment/endpoints.ts";
import { SliceExecutor } from "../../runtime/sandbox/mod.ts";
import { SliceInvoker } from "../../runtime/invoke/mod.ts";
import { fixture, SECRET } from "../../runtime/invoke/testing.ts";
import { cpuSeconds } from "./_proc_cpu.ts";

const [self, peerPort, callsText, peerPidText] = Deno.args;

const quiet = createLogger({ level: "error", sink: () => {} });
const mesh = new Mesh({
  self,
  peers: [
    { id: "n1", host: "127.0.0.1", port: 0 },
    { id: "n2", host: "127.0.0.1", port: self === "n2" ? 0 : Number(peerPort) },
  ],
  secret: SECRET,
  logger: quiet,
});
await mesh.start();

const state = new KvState();
const hello = await fixture("hello");
const caller = await fixture("caller");
for (const [slice, node] of [[hello, "n2"], [caller, "n1"]] as const) {
  for (const method of slice.manifest.methods) {
    state.apply({
      type: "put",
      key: kvKeys.endpoint(slice.manifest.coordinates, method, node, 0),
      value: encodeValue("endpoint", { registeredAt: 1 }),
    });
  }
}
const late: { invoker?: SliceInvoker } = {};
const executor = new SliceExecutor({
  policy: { mode: "worker", net: [], env: [], memoryLimitMb: 256 },
  trustAllSlices: true,
  warmProcesses: false,
  onOutboundCall: (call) => late.invoker!.outboundHandler(call),
  onLog: () => {},
});
const invoker = late.invoker = new SliceInvoker({
  self,
  mesh,
  endpoints: EndpointRegistry.fromKv(state),
  executor,
  log: quiet,
});
const mine = self === "n2" ? hello : caller;
const instanceId = `${mine.manifest.coordinates}/0`;
await executor.run({ type: "LOAD", instanceId, artifact: { manifest: mine.manifest, bundle: mine.bundle } });
await executor.run({ type: "ACTIVATE", instanceId });

if (self === "n2") {
  console.log(JSON.stringify({ port: mesh.port }));
  for await (const _ of Deno.stdin.readable) { /* until closed */ }
} else {
  while (!mesh.isConnected("n2")) await new Promise((r) => setTimeout(r, 5));
  const n = Number(callsText);
  const warmup = Math.min(500, n / 4);
  const both = () => cpuSeconds(Deno.pid, true) + cpuSeconds(Number(peerPidText), true);
  const cpuBefore = both();
  const outcome = await invoker.invoke("org.example.invoke:caller", "loop", {
    n,
    warmup,
    payload: { sku: "LAPTOP-PRO", quantity: 2 },
  }, { timeoutMs: 600_000 });
  const cpuUsPerCall = ((both() - cpuBefore) * 1e6) / (n + warmup);
  console.log(
    JSON.stringify({ port: 0, result: outcome.ok ? { ...outcome.value as object, cpuUsPerCall } : outcome }),
  );
}
invoker.close();
await mesh.stop();
await executor.close();
