/**
 * Helper process of invoke_bench.ts: where an HTTP request's time goes. One Deno.serve, whose handler is
 * switched between layers, each driven by wrk -t1 -c50 while the CPU time of this process and its children
 * (the sandbox process in process isolation) is read from /proc:
 *
 *   raw       a hello world
 *   worker    one postMessage round trip to a Worker that echoes
 *   batched   the same, the requests of one event loop turn in one message (the floor of a batched hop)
 *   reads     no hop: only the contract's reads of the request (below), no response header of ours
 *   contract  no hop: only what the HTTP contract makes any handler touch of Deno's request and response
 *             (the URL, the method, the x-request-id, traceparent and x-aether-timeout-ms headers; the
 *             x-request-id response header): Deno's own price for them, against raw's bare Response.json
 *   ceiling   contract plus the batched hop: the most a design that serves HTTP on the main thread, honours
 *             the contract and isolates the slice in a Worker can reach here, whatever its own code costs
 *   executor  SliceExecutor.invoke of the `hello` slice (in the given isolation)
 *   invoker   SliceInvoker.invoke of it (lookup, selection, deadline, ids)
 *   request   the invoker plus what any handler must touch of Deno's request and response: read the URL, the
 *             method and one header, set one response header (no logic of ours: Deno's cost for them)
 *   handler   the application HTTP handler (route match, request id in and out, problem documents)
 *   threads   the ceiling's work served by two Workers sharing a port (reusePort), the main thread idle
 *
 *   deno run -A --unstable-worker-options --unstable-net tests/bench/_invoke_layers.ts <seconds> [worker|process]
 * prints one JSON line per layer: {layer, requestsPerSecond, cpuUsPerRequest, ownCpuUsPerRequest,
 * mainThreadCpuUsPerRequest}. The main thread's share tells whether it is the bound: Deno.serve runs its HTTP
 * work and the handler there, so a layer's throughput cannot pass 1 s / its main-thread CPU per request.
 */

import { silentLogger } from "../../runtime/core/log.ts";
import { fixture, InProcessCluster } from "../../runtime/invoke/testing.ts";
import { createAppHandler, RouteDirectory } from "../../runtime/http/mod.ts";
import type { IsolationMode } from "../../runtime/sandbox/mod.ts";
import { cpuSeconds, threadCpuSeconds } from "./_proc_cpu.ts";
import { contractResponse, EchoHop, readContract, startEcho } from "./_contract.ts";

const seconds = Number(Deno.args[0] ?? 4);
const mode = (Deno.args[1] ?? "worker") as IsolationMode;
const cluster = await InProcessCluster.start(["n1"], { mode });
const instanceId = await cluster.deploy("n1", await fixture("hello"));
const node = cluster.node("n1");
const directory = new RouteDirectory(() => cluster.state);
const app = createAppHandler({ routes: () => directory.table(), invoker: node.invoker, log: silentLogger });

const echo = startEcho();
const hop = new EchoHop(echo);

type Handler = (request: Request) => Response | Promise<Response>;
const valueOf = (outcome: { ok: boolean; value?: unknown }) => outcome.ok ? outcome.value : null;
const layers: Record<string, Handler> = {
  raw: () => Response.json({ message: "hello" }),
  worker: () => hop.one((value) => Response.json(value)),
  batched: () => hop.batched((value) => Response.json(value)),
  reads: (request) => {
    readContract(request);
    return Response.json({ message: "hello" });
  },
  contract: (request) => {
    readContract(request);
    return contractResponse({ message: "hello" });
  },
  ceiling: (request) => {
    readContract(request);
    return hop.batched(contractResponse);
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

/**
 * The `threads` layer: the ceiling served by `SERVE_THREADS` Workers sharing one port (the main thread idle),
 * each with its own port to one echo Worker: what serving the application port from several threads gives on
 * this machine, where wrk shares the cores.
 */
const SERVE_THREADS = 2;
async function startServeThreads(): Promise<{ port: number; close(): void }> {
  const threads: Worker[] = [];
  let port = 0;
  for (let i = 0; i < SERVE_THREADS; i++) {
    const thread = new Worker(new URL("./_serve_thread.ts", import.meta.url), { type: "module" });
    threads.push(thread);
    const channel = new MessageChannel();
    echo.postMessage(channel.port1, [channel.port1]);
    const listening = new Promise<{ port: number }>((resolve) => thread.onmessage = (e) => resolve(e.data));
    thread.postMessage({ port, echo: channel.port2 }, [channel.port2]);
    port = (await listening).port;
  }
  return { port, close: () => threads.forEach((thread) => thread.terminate()) };
}

let current: Handler = layers.raw;
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (r) => current(r));
const threads = await startServeThreads();
const urls = {
  main: `http://127.0.0.1:${server.addr.port}/hello`,
  threads: `http://127.0.0.1:${threads.port}/hello`,
};
for (const [layer, handler] of [...Object.entries(layers), ["threads", layers.raw] as const]) {
  current = handler;
  const url = layer === "threads" ? urls.threads : urls.main;
  await wrk(url, 1); // warm-up
  const before = cpuSeconds(Deno.pid);
  const ownBefore = cpuSeconds(Deno.pid, true);
  const mainBefore = threadCpuSeconds(Deno.pid);
  const { text, requests } = await wrk(url, seconds);
  const cpu = cpuSeconds(Deno.pid) - before;
  const own = cpuSeconds(Deno.pid, true) - ownBefore;
  const main = threadCpuSeconds(Deno.pid) - mainBefore;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  console.log(JSON.stringify({
    layer,
    requestsPerSecond: rps,
    cpuUsPerRequest: (cpu * 1e6) / requests,
    ownCpuUsPerRequest: (own * 1e6) / requests,
    mainThreadCpuUsPerRequest: (main * 1e6) / requests,
  }));
}
await server.shutdown();
threads.close();
echo.terminate();
await cluster.close();
