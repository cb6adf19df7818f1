/**
 * The JavaScript of the request path alone, in one isolate, no I/O (what invoke_bench.ts's layer table cannot
 * separate from Deno's own HTTP and messaging costs):
 *
 *   deno run -A tests/bench/request_path_bench.ts
 *
 * 1. The application HTTP handler (route match, request id, request building, response) with an invoker that
 *    answers at once, against the least any handler does in the same run: read one header, await, answer with
 *    `Response.json` plus one header.
 * 2. A batch of 17 call messages to a sandbox (about what one event loop turn carries under load) encoded as
 *    JSON text and parsed back, as both sandbox channels do, against a structured clone of the same objects
 *    (what a postMessage of objects costs).
 */

import { silentLogger } from "../../runtime/core/log.ts";
import { createAppHandler, RouteTable } from "../../runtime/http/mod.ts";

function perOperationUs(n: number, body: () => void): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) body();
  return ((performance.now() - t0) * 1000) / n;
}

async function perRequestUs(n: number, body: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < n / 10; i++) await body(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await body();
  return ((performance.now() - t0) * 1000) / n;
}

// 1. The handler ---------------------------------------------------------------------------------------------
const table = new RouteTable([{
  httpMethod: "GET",
  path: "/hello",
  slice: "org.example.invoke:hello",
  method: "hello",
  nodes: ["n1"],
  queryParams: [],
}]);
const invoker = { invoke: () => Promise.resolve({ ok: true as const, value: { message: "hello" } }) };
const app = createAppHandler({ routes: () => table, invoker, log: silentLogger });
const request = new Request("http://127.0.0.1:8000/hello");
const REQUESTS = 200_000;
const handlerUs = await perRequestUs(REQUESTS, () => app(request));
const leastUs = await perRequestUs(REQUESTS, async () => {
  request.headers.get("x-request-id");
  const outcome = await invoker.invoke();
  const response = Response.json(outcome.value);
  response.headers.set("x-request-id", "0123456789abcdef");
  return response;
});
console.log("1. HTTP handler, stub invoker, no I/O");
console.log(`   application handler                ${handlerUs.toFixed(2)} µs/request`);
console.log(
  `   least a handler does (baseline)    ${leastUs.toFixed(2)} µs/request  (handler ${
    (handlerUs / leastUs).toFixed(1)
  }x)`,
);

// 2. Messages to a sandbox -----------------------------------------------------------------------------------
const BATCH = 17;
const call = (id: number) => ({
  t: "call",
  id,
  method: "hello",
  payload: { sku: "LAPTOP-PRO", quantity: 2 },
  requestId: "0123456789abcdef",
  traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
  deadline: Date.now() + 30_000,
});
const batch = Array.from({ length: BATCH }, (_, i) => call(i));
const ROUNDS = 20_000;
perOperationUs(ROUNDS / 10, () => JSON.parse(`[${batch.map((m) => JSON.stringify(m)).join(",")}]`));
perOperationUs(ROUNDS / 10, () => structuredClone(batch));
const jsonUs =
  perOperationUs(ROUNDS, () => JSON.parse(`[${batch.map((m) => JSON.stringify(m)).join(",")}]`)) /
  BATCH;
const cloneUs = perOperationUs(ROUNDS, () => structuredClone(batch)) / BATCH;
console.log(`2. a batch of ${BATCH} call messages, per message`);
console.log(`   JSON.stringify + JSON.parse        ${jsonUs.toFixed(2)} µs`);
console.log(
  `   structuredClone (baseline)         ${cloneUs.toFixed(2)} µs  (JSON ${(jsonUs / cloneUs).toFixed(2)}x)`,
);
