/**
 * Helper process of invoke_bench.ts: where an HTTP request's time goes. One Deno.serve, whose handler is
 * switched between layers, each driven by wrk -t1 -c50 while this process's CPU time is read from /proc:
 *
 *   raw       a hello world
 *   worker    one postMessage round trip to a Worker that echoes
 *   executor  SliceExecutor.invoke of the `hello` slice (worker isolation)
 *   invoker   SliceInvoker.invoke of it (lookup, selection, deadline, ids)
 *   handler   the application HTTP handler (route match, request id in and out, problem documents)
 *
 *   deno run -A --unstable-worker-options tests/bench/_invoke_layers.ts <seconds>
 * prints one JSON line per layer: {layer, requestsPerSecond, cpuUsPerRequest}.
 */

import { silentLogger } from "../../runtime/core/log.ts";
import { fixture, InProcessCluster } from "../../runtime/invoke/_testing.ts";
import { createAppHandler, RouteDirectory } from "../../runtime/http/mod.ts";

const seconds = Number(Deno.args[0] ?? 4);
const cluster = await InProcessCluster.start(["n1"]);
const instanceId = await cluster.deploy("n1", await fixture("hello"));
const node = cluster.node("n1");
const directory = new RouteDirectory(() => cluster.state);
const app = createAppHandler({ routes: () => directory.table(), invoker: node.invoker, log: silentLogger });

const echo = new Worker(
  URL.createObjectURL(new Blob(["onmessage = (e) => postMessage(e.data);"], { type: "text/javascript" })),
  { type: "module" },
);
const waiting = new Map<number, (value: unknown) => void>();
let next = 0;
echo.onmessage = (e) => {
  const done = waiting.get(e.data.id)!;
  waiting.delete(e.data.id);
  done(e.data.value);
};

type Handler = (request: Request) => Response | Promise<Response>;
const valueOf = (outcome: { ok: boolean; value?: unknown }) => outcome.ok ? outcome.value : null;
const layers: Record<string, Handler> = {
  raw: () => Response.json({ message: "hello" }),
  worker: () =>
    new Promise((resolve) => {
      const id = next++;
      waiting.set(id, (value) => resolve(Response.json(value)));
      echo.postMessage({ id, value: { message: "hello" } });
    }),
  executor: async () =>
    Response.json(valueOf(await node.executor.invoke(instanceId, "hello", {}, { requestId: "bench" }))),
  invoker: async () =>
    Response.json(
      valueOf(await node.invoker.invoke("org.example.invoke:hello", "hello", {}, { requestId: "bench" })),
    ),
  handler: app,
};

function cpuSeconds(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function wrk(url: string, duration: number): Promise<{ text: string; requests: number }> {
  const output = await new Deno.Command("wrk", {
    args: ["-t1", "-c50", `-d${duration}s`, url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  return { text, requests: Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN) };
}

let current: Handler = layers.raw;
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (r) => current(r));
const url = `http://127.0.0.1:${server.addr.port}/hello`;
for (const [layer, handler] of Object.entries(layers)) {
  current = handler;
  await wrk(url, 1); // warm-up
  const before = cpuSeconds();
  const { text, requests } = await wrk(url, seconds);
  const cpu = cpuSeconds() - before;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  console.log(JSON.stringify({ layer, requestsPerSecond: rps, cpuUsPerRequest: (cpu * 1e6) / requests }));
}
await server.shutdown();
echo.terminate();
await cluster.close();
