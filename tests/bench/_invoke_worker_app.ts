/**
 * Helper process of invoke_bench.ts: the application HTTP handler, the invoker and a slice in worker
 * isolation (the `hello` fixture), without consensus around them: one in-process "node" (runtime/invoke's test
 * harness) behind Deno.serve. Prints `{"port": N}` when ready; exits when standard input closes.
 *
 *   deno run -A --unstable-worker-options tests/bench/_invoke_worker_app.ts
 */

import { silentLogger } from "../../runtime/core/log.ts";
import { fixture, InProcessCluster } from "../../runtime/invoke/testing.ts";
import { createAppHandler, RouteDirectory } from "../../runtime/http/mod.ts";

const cluster = await InProcessCluster.start(["n1"]);
await cluster.deploy("n1", await fixture("hello"));
const directory = new RouteDirectory(() => cluster.state);
const handler = createAppHandler({
  routes: () => directory.table(),
  invoker: cluster.node("n1").invoker,
  log: silentLogger,
});
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
console.log(JSON.stringify({ port: server.addr.port }));
for await (const _ of Deno.stdin.readable) { /* until closed */ }
await server.shutdown();
await cluster.close();
