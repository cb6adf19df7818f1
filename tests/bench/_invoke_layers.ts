/**
 * Helper process of invoke_bench.ts: where an HTTP request's time goes. One Deno.serve, whose handler is
 * switched between layers, each driven by wrk -t1 -c50 while the CPU time of this process and its children
 * (the sandbox process in process isolation) is read from /proc:
 *
 *   raw       a hello world
 *   worker    one postMessage round trip to a Worker that echoes
 *   batched   the same, the requests of one event loop turn in one message (the floor of a batched hop)
 *   contract  no hop: only what the HTTP contract makes any handler touch of Deno's request and response
 *             (the URL, the method, the x-request-id, traceparent and x-aether-timeout-ms headers; the
 *             x-request-id response header): Deno's own price for them, against raw's bare Response.json
 *   ceiling   contract plus the batched hop: the most any worker-isolated design honouring the contract can
 *             reach here, whatever its own code costs
 *   executor  SliceExecutor.invoke of the `hello` slice (in the given isolation)
 *   invoker   SliceInvoker.invoke of it (lookup, selection, deadline, ids)
 *   request   the invoker plus what any handler must touch of Deno's request and response: read the URL, the
 *             method and one header, set one response header (no logic of ours: Deno's cost for them)
 *   handler   the application HTTP handler (route match, request id in and out, problem documents)
 *
 *   deno run -A --unstable-worker-options tests/bench/_invoke_layers.ts <seconds> [worker|process]
 * prints one JSON line per layer: {layer, requestsPerSecond, cpuUsPerRequest, ownCpuUsPerRequest}.
 */

import { silentLogger } from "../../runtime/core/log.ts";
import { fixture, InProcessCluster } from "../../runtime/invoke/_testing.ts";
import { createAppHandler, RouteDirectory } from "../../runtime/http/mod.ts";
import type { IsolationMode } from "../../runtime/sandbox/mod.ts";
import { cpuSeconds } from "./_proc_cpu.ts";

const seconds = Number(Deno.args[0] ?? 4);
const mode = (Deno.args[1] ?? "worker") as IsolationMode;
const cluster = await InProcessCluster.start(["n1"], { mode });
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
  for (const message of Array.isArray(e.data) ? e.data : [e.data]) {
    const done = waiting.get(message.id)!;
    waiting.delete(message.id);
    done(message.value);
  }
};
/** Messages for the echo Worker, sent at the end of the event loop turn (as the sandbox channels do). */
let batch: Array<{ id: number; value: unknown }> = [];
const sendBatch = () => {
  echo.postMessage(batch);
  batch = [];
};
/** A round trip through the echo Worker in the batch of this event loop turn, answered with `respond`. */
const batchedHop = (respond: (value: unknown) => Response) =>
  new Promise<Response>((resolve) => {
    const id = next++;
    waiting.set(id, (value) => resolve(respond(value)));
    if (batch.length === 0) setImmediate(sendBatch);
    batch.push({ id, value: { message: "hello" } });
  });

/** What the HTTP contract makes any handler read of the request (the values themselves are not used). */
const readContract = (request: Request) => {
  const headers = request.headers;
  return [
    request.url,
    request.method,
    headers.get("x-request-id"),
    headers.get("traceparent"),
    headers.get("x-aether-timeout-ms"),
  ];
};
/** What the HTTP contract makes any handler write: the value as JSON, plus the request id header. */
const contractResponse = (value: unknown) => {
  const response = Response.json(value);
  response.headers.set("x-request-id", "0123456789abcdef");
  return response;
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
  batched: () => batchedHop((value) => Response.json(value)),
  contract: (request) => {
    readContract(request);
    return contractResponse({ message: "hello" });
  },
  ceiling: (request) => {
    readContract(request);
    return batchedHop(contractResponse);
  },
  executor: async () =>
    Response.json(valueOf(await node.executor.invoke(instanceId, "hello", {}, { requestId: "bench" }))),
  invoker: async () =>
    Response.json(
      valueOf(await node.invoker.invoke("org.example.invoke:hello", "hello", {}, { requestId: "bench" })),
    ),
  request: async (request) => {
    request.url;
    request.method;
    request.headers.get("x-request-id");
    const response = Response.json(
      valueOf(await node.invoker.invoke("org.example.invoke:hello", "hello", {}, { requestId: "bench" })),
    );
    response.headers.set("x-request-id", "0123456789abcdef");
    return response;
  },
  handler: app,
};

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
  const before = cpuSeconds(Deno.pid);
  const ownBefore = cpuSeconds(Deno.pid, true);
  const { text, requests } = await wrk(url, seconds);
  const cpu = cpuSeconds(Deno.pid) - before;
  const own = cpuSeconds(Deno.pid, true) - ownBefore;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  console.log(JSON.stringify({
    layer,
    requestsPerSecond: rps,
    cpuUsPerRequest: (cpu * 1e6) / requests,
    ownCpuUsPerRequest: (own * 1e6) / requests,
  }));
}
await server.shutdown();
echo.terminate();
await cluster.close();
