/**
 * The bad-input suite, on a real node process (one member on loopback, the slices of tests/fixtures/bad_input
 * pushed through the repository API and deployed through the deployment API): a table of malformed requests to
 * every management API route and to the application port — bad percent-encoding and control characters in
 * keys, out-of-range numbers, unknown methods (`__proto__` too), odd statuses a slice answers with, bad JSON,
 * wrong content types, bad headers, garbage on the wire — each row the status it must get and words its
 * problem document (application/problem+json) must name. It counts the inputs and prints a summary table
 * (inputs per category, answers by status) for the docs.
 */

import { equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import type { SliceStatus } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

type Port = "api" | "app";

interface Row {
  category: string;
  /** What is sent, as the docs show it. */
  input: string;
  port: Port;
  method?: string;
  /** Path and query, sent as written (fetch keeps percent-encoding as it is). */
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Bytes written to the socket as they are, instead of a fetch. */
  raw?: string;
  status: number;
  /** Words the problem document's detail must contain (case-insensitive). */
  names?: string[];
  /** A row whose answer is not a problem document (a success that proves the input was taken). */
  notProblem?: boolean;
  /** The answer must come within this many ms (e.g. a refused unknown method is not retried for seconds). */
  withinMs?: number;
}

interface Answer {
  status: number;
  contentType: string;
  body: string;
  ms: number;
}

const json = { "content-type": "application/json" };
/** How long one row may take; a malformed request is answered long before (an accepted watch never ends). */
const ROW_TIMEOUT_MS = 5_000;

function rows(): Row[] {
  const api = (
    category: string,
    input: string,
    method: string,
    path: string,
    status: number,
    names: string[],
    extra: Partial<Row> = {},
  ): Row => ({ category, input, port: "api", method, path, status, names, ...extra });
  const app = (
    category: string,
    input: string,
    method: string,
    path: string,
    status: number,
    names: string[],
    extra: Partial<Row> = {},
  ): Row => ({ category, input, port: "app", method, path, status, names, ...extra });
  const out: Row[] = [];

  // 14: keys in paths.
  for (const method of ["PUT", "GET", "DELETE"]) {
    out.push(api("kv key", `${method} kv/app/%ZZ`, method, "/api/v1/kv/app/%ZZ", 400, ["percent", "%ZZ"]));
    out.push(
      api("kv key", `${method} kv/app/%ED%A0%80 (lone surrogate)`, method, "/api/v1/kv/app/%ED%A0%80", 400, [
        "percent",
      ]),
    );
    out.push(
      api("kv key", `${method} kv/app/x%E2%82 (cut UTF-8)`, method, "/api/v1/kv/app/x%E2%82", 400, [
        "percent",
      ]),
    );
  }
  for (const [label, encoded] of [["NUL", "%00"], ["CR LF", "%0D%0A"], ["LF", "%0A"], ["DEL", "%7F"]]) {
    out.push(
      api("kv key", `PUT kv/app/a${encoded}b (${label})`, "PUT", `/api/v1/kv/app/a${encoded}b`, 400, [
        "control",
      ]),
    );
    out.push(
      api("kv key", `DELETE kv/app/a${encoded}b (${label})`, "DELETE", `/api/v1/kv/app/a${encoded}b`, 400, [
        "control",
      ]),
    );
  }
  out.push(api("kv key", "PUT kv/ (empty key)", "PUT", "/api/v1/kv/", 400, ["key", "empty"]));
  out.push(api("kv key", "PUT kv/app/ (empty name)", "PUT", "/api/v1/kv/app/", 400, ["key"]));
  out.push(api("kv key", "PUT kv/cluster/x (runtime key)", "PUT", "/api/v1/kv/cluster/x", 403, ["app/"]));
  out.push(api("kv key", `PUT kv/app/${"k".repeat(1100)}`, "PUT", `/api/v1/kv/app/${"k".repeat(1100)}`, 400, [
    "1024",
  ]));
  out.push(api("kv key", "GET kv/app/missing", "GET", "/api/v1/kv/app/missing", 404, ["app/missing"]));

  // 15: numeric query parameters.
  const numbers: Array<[string, string, string, string]> = [
    ["PUT", "/api/v1/kv/app/n", "timeoutMs", "99999999999999"],
    ["PUT", "/api/v1/kv/app/n", "timeoutMs", "0"],
    ["PUT", "/api/v1/kv/app/n", "timeoutMs", "-5"],
    ["PUT", "/api/v1/kv/app/n", "timeoutMs", "1e3"],
    ["PUT", "/api/v1/kv/app/n", "ifRevision", "99999999999999999999"],
    ["PUT", "/api/v1/kv/app/n", "ifRevision", "abc"],
    ["DELETE", "/api/v1/kv/app/n", "timeoutMs", "99999999999999"],
    ["DELETE", "/api/v1/kv/app/n", "ifRevision", "-1"],
    ["GET", "/api/v1/kv/app/n", "timeoutMs", "99999999999999"],
    ["GET", "/api/v1/kv", "limit", "0"],
    ["GET", "/api/v1/kv", "limit", "99999999999999"],
    ["GET", "/api/v1/kv", "limit", "1.5"],
    ["GET", "/api/v1/kv-watch", "fromRevision", "99999999999999999999"],
    ["GET", "/api/v1/kv-watch", "fromRevision", "x"],
    ["GET", "/api/v1/logs", "limit", "99999999999999"],
    ["POST", "/api/v1/artifacts", "replicas", "0"],
    ["POST", "/api/v1/artifacts", "replicas", "99999"],
  ];
  for (const [method, path, name, value] of numbers) {
    out.push(
      api(
        "numeric parameter",
        `${method} ${path}?${name}=${value}`,
        method,
        `${path}?${name}=${value}`,
        400,
        [
          name,
        ],
        { withinMs: 2_000 },
      ),
    );
  }
  out.push(
    api("numeric parameter", "GET kv/app/n with last-event-id: 1e999", "GET", "/api/v1/kv-watch", 400, [
      "last-event-id",
    ], { headers: { "last-event-id": "99999999999999999999" } }),
  );

  // 16: unknown methods.
  for (const method of ["nope", "__proto__", "constructor", "toString", "hasOwnProperty"]) {
    out.push(
      api(
        "unknown method",
        `POST invoke/org.example.bad:peer/${method}`,
        "POST",
        `/api/v1/invoke/org.example.bad:peer/${method}`,
        404,
        [
          method,
          "ping",
          "version",
        ],
        { withinMs: 1_000, headers: json, body: "{}" },
      ),
    );
    out.push(
      app("unknown method", `odd calls peer.${method} (slice to slice)`, "GET", `/odd/call/${method}`, 200, [
        method,
        "ping",
        "version",
      ], { withinMs: 1_000, notProblem: true }),
    );
  }
  out.push(
    api(
      "unknown method",
      "POST invoke/org.example.bad:nobody/ping (no such slice)",
      "POST",
      "/api/v1/invoke/org.example.bad:nobody/ping",
      503,
      [
        "no live instance",
      ],
      { headers: json, body: "{}" },
    ),
  );
  out.push(
    api("unknown method", "POST invoke/not-a-target/ping", "POST", "/api/v1/invoke/not-a-target/ping", 400, [
      "call target",
    ], { headers: json, body: "{}" }),
  );

  // 17: odd statuses a slice answers with.
  for (const code of ["99", "101", "1000", "s204", "-1", "2.5"]) {
    out.push(
      app(
        "slice status",
        `a slice answers status ${code.replace("s", '"') + (code.startsWith("s") ? '"' : "")}`,
        "GET",
        `/odd/status/${code}`,
        500,
        [
          "org.example.bad:odd",
          "status",
        ],
      ),
    );
  }

  // 18: malformed requests and headers, API port.
  const bodies: Array<[string, string, string, string]> = [
    ["POST", "/api/v1/deploy", "{not json", "JSON"],
    ["POST", "/api/v1/routing", "{not json", "JSON"],
    ["PUT", "/api/v1/timeouts/org.example.bad:odd", "{not json", "JSON"],
    ["POST", "/api/v1/invoke/org.example.bad:peer/ping", "{not json", "JSON"],
    ["POST", "/api/v1/blueprints", "{not json", ""],
    ["POST", "/api/v1/routing", "[1,2]", "JSON object"],
    ["PUT", "/api/v1/timeouts/org.example.bad:odd", '{"timeoutMs": 1e99}', "timeoutMs"],
    ["PUT", "/api/v1/timeouts/org.example.bad:odd", '{"timeoutMs": "5"}', "timeoutMs"],
    ["POST", "/api/v1/deploy", '{"artifact": 5}', "artifact"],
    ["POST", "/api/v1/deploy", '{"artifact": "org.example.bad:odd:1.0.0", "instances": 1e9}', "instances"],
  ];
  for (const [method, path, body, name] of bodies) {
    out.push(api("request body", `${method} ${path} body ${body}`, method, path, 400, name ? [name] : [], {
      headers: json,
      body,
    }));
  }
  out.push(
    api("content type", "POST artifacts as text/plain", "POST", "/api/v1/artifacts", 400, ["multipart"], {
      headers: { "content-type": "text/plain" },
      body: "hello",
    }),
  );
  out.push(
    api("content type", "POST artifacts multipart without boundary", "POST", "/api/v1/artifacts", 400, [
      "multipart",
    ], { headers: { "content-type": "multipart/form-data" }, body: "--x\r\n" }),
  );
  out.push(
    api("content type", "POST artifacts garbled multipart", "POST", "/api/v1/artifacts", 400, ["multipart"], {
      headers: { "content-type": "multipart/form-data; boundary=zzz" },
      body: "not multipart at all",
    }),
  );
  out.push(
    api(
      "header",
      "POST invoke with x-aether-timeout-ms: abc",
      "POST",
      "/api/v1/invoke/org.example.bad:peer/ping",
      400,
      [
        "x-aether-timeout-ms",
      ],
      { headers: { ...json, "x-aether-timeout-ms": "abc" }, body: "{}" },
    ),
  );
  out.push(api("path", "GET routing/%ZZ", "GET", "/api/v1/routing/%ZZ", 400, ["artifact"]));
  out.push(api("path", "GET blueprints/%ZZ", "GET", "/api/v1/blueprints/%ZZ", 400, []));
  out.push(api("path", "GET artifacts/%ZZ", "GET", "/api/v1/artifacts/%ZZ", 400, []));
  out.push(
    api("path", "POST invoke/%ZZ/ping", "POST", "/api/v1/invoke/%ZZ/ping", 400, [], {
      headers: json,
      body: "{}",
    }),
  );
  out.push(
    api("path", "GET /api/v1/nothing-here", "GET", "/api/v1/nothing-here", 404, ["/api/v1/nothing-here"]),
  );
  out.push(api("path", "GET /api/v1/%ZZ", "GET", "/api/v1/%ZZ", 404, []));
  out.push(api("query", "GET logs?level=loud", "GET", "/api/v1/logs?level=loud", 400, ["level"]));
  out.push(api("query", "GET logs?bogus=1", "GET", "/api/v1/logs?bogus=1", 400, ["bogus"]));
  out.push(api("query", "GET kv?prefix=%ZZ", "GET", "/api/v1/kv?prefix=%ZZ", 400, ["prefix"]));
  out.push(api("query", "POST deploy?dryRun=maybe", "POST", "/api/v1/deploy?dryRun=maybe", 400, ["dryRun"], {
    headers: json,
    body: "{}",
  }));

  // 18: malformed requests and headers, application port.
  out.push(app("request body", "POST /odd/echo body {not json", "POST", "/odd/echo", 400, ["JSON"], {
    headers: json,
    body: "{not json",
  }));
  out.push(app("request body", "GET /odd/things/1 with a body (ignored)", "GET", "/odd/things/1", 200, [], {
    notProblem: true,
  }));
  out.push(app("header", "x-aether-timeout-ms: abc", "POST", "/odd/echo", 400, ["x-aether-timeout-ms"], {
    headers: { ...json, "x-aether-timeout-ms": "abc" },
    body: "{}",
  }));
  out.push(
    app("header", "x-aether-timeout-ms: 99999999999999", "POST", "/odd/echo", 400, ["x-aether-timeout-ms"], {
      headers: { ...json, "x-aether-timeout-ms": "99999999999999" },
      body: "{}",
    }),
  );
  out.push(app("header", "traceparent: garbage (a new trace starts)", "POST", "/odd/echo", 200, [], {
    headers: { ...json, traceparent: "garbage" },
    body: "{}",
    notProblem: true,
  }));
  out.push(app("header", "x-request-id: 300 characters (a new id is made)", "POST", "/odd/echo", 200, [], {
    headers: { ...json, "x-request-id": "r".repeat(300) },
    body: "{}",
    notProblem: true,
  }));
  out.push(app("path", "GET /odd/things/%ZZ", "GET", "/odd/things/%ZZ", 400, ["percent"]));
  out.push(app("path", "GET /odd/things/a%00b", "GET", "/odd/things/a%00b", 200, [], { notProblem: true }));
  out.push(app("path", "GET /nowhere", "GET", "/nowhere", 404, ["/nowhere"]));
  out.push(app("path", "PUT /odd/echo (wrong method)", "PUT", "/odd/echo", 405, ["POST"]));
  out.push(app("query", "GET /odd/things/1?limit=%ZZ", "GET", "/odd/things/1?limit=%ZZ", 400, ["limit"]));
  out.push(app("request body", "POST /odd/echo 2 MB body", "POST", "/odd/echo", 413, ["limit"], {
    headers: json,
    body: JSON.stringify({ big: "x".repeat(2 * 1024 * 1024) }),
  }));

  out.push(app("content type", "POST /odd/echo text/plain body hello", "POST", "/odd/echo", 400, ["JSON"], {
    headers: { "content-type": "text/plain" },
    body: "hello",
  }));
  out.push(app("header", "x-aether-timeout-ms: 0", "POST", "/odd/echo", 400, ["x-aether-timeout-ms"], {
    headers: { ...json, "x-aether-timeout-ms": "0" },
    body: "{}",
  }));
  out.push(
    api(
      "header",
      "POST invoke with x-aether-timeout-ms: -1",
      "POST",
      "/api/v1/invoke/org.example.bad:peer/ping",
      400,
      [
        "x-aether-timeout-ms",
      ],
      { headers: { ...json, "x-aether-timeout-ms": "-1" }, body: "{}" },
    ),
  );
  out.push(api("query", "GET kv-watch?prefix=%ZZ", "GET", "/api/v1/kv-watch?prefix=%ZZ", 400, ["prefix"]));
  out.push(
    api("query", "GET kv/app/x?consistent=maybe", "GET", "/api/v1/kv/app/x?consistent=maybe", 400, [
      "consistent",
    ]),
  );
  out.push(api("path", "PUT timeouts/%ZZ", "PUT", "/api/v1/timeouts/%ZZ", 400, ["artifact"], {
    headers: json,
    body: '{"timeoutMs": 5}',
  }));
  out.push(
    api("request body", "POST deploy with an unknown field", "POST", "/api/v1/deploy", 400, ["bogus"], {
      headers: json,
      body: '{"artifact": "org.example.bad:odd:1.0.0", "bogus": 1}',
    }),
  );
  out.push(
    api("request body", "POST invoke 2 MB body", "POST", "/api/v1/invoke/org.example.bad:peer/ping", 413, [
      "limit",
    ], { headers: json, body: JSON.stringify({ big: "x".repeat(2 * 1024 * 1024) }) }),
  );

  // 18: every other route of the API, once each with a malformed input.
  const more: Array<[string, string, string | undefined, number, string[]]> = [
    ["POST", "/api/v1/scale", '{"artifact": "org.example.bad:odd", "instances": -1}', 400, ["instances"]],
    ["POST", "/api/v1/scale", "{not json", 400, ["JSON"]],
    ["POST", "/api/v1/undeploy", '{"artifact": ["x"]}', 400, ["artifact"]],
    ["POST", "/api/v1/undeploy", "{not json", 400, ["JSON"]],
    ["GET", "/api/v1/blueprints/%ZZ/status", undefined, 400, ["blueprint id"]],
    ["DELETE", "/api/v1/blueprints/%ZZ", undefined, 400, ["blueprint id"]],
    ["GET", "/api/v1/artifacts/%ZZ/versions", undefined, 400, ["%ZZ"]],
    ["GET", "/api/v1/artifacts/%ZZ/manifest", undefined, 400, ["%ZZ"]],
    ["GET", "/api/v1/artifacts/org.example.bad:odd:9.9.9/bundle", undefined, 404, [
      "org.example.bad:odd:9.9.9",
    ]],
    ["DELETE", "/api/v1/artifacts/a:b:c:d", undefined, 400, ["a:b:c:d"]],
    ["DELETE", "/api/v1/routing/%ZZ", undefined, 400, ["artifact"]],
    ["DELETE", "/api/v1/timeouts/org.example.bad", undefined, 400, ["artifact"]],
    ["GET", "/api/v1/routing/org.example.bad:odd:1.0.0", undefined, 400, ["no version"]],
  ];
  for (const [method, path, body, status, names] of more) {
    out.push(
      api("other routes", `${method} ${path}${body ? ` body ${body}` : ""}`, method, path, status, names, {
        headers: body ? json : {},
        body,
      }),
    );
  }
  out.push(
    api(
      "content type",
      "PUT artifacts/{c} as application/json",
      "PUT",
      "/api/v1/artifacts/org.example.bad:odd:1.0.1",
      400,
      [
        "multipart",
      ],
      { headers: json, body: "{}" },
    ),
  );
  out.push(
    api("header", "POST artifacts, x-aether-sha256: zz, no parts", "POST", "/api/v1/artifacts", 400, [
      "manifest",
      "bundle",
    ], {
      headers: { "x-aether-sha256": "zz", "content-type": "multipart/form-data; boundary=zzz" },
      body: "--zzz--\r\n",
    }),
  );
  out.push(
    api("request body", "PUT kv/app/big over the value limit", "PUT", "/api/v1/kv/app/big", 413, ["limit"], {
      body: "x".repeat(2 * 1024 * 1024),
    }),
  );

  // 18: garbage on the wire. Deno.serve (hyper) answers malformed HTTP framing itself with a bare 400 and
  // closes the connection before any handler runs, so these cannot carry a problem document (a known limit).
  for (const port of ["api", "app"] as const) {
    out.push({
      category: "wire",
      input: `${port}: oversized header (100 KB)`,
      port,
      raw: `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(100_000)}\r\n\r\n`,
      status: 400,
      notProblem: true,
    });
    out.push({
      category: "wire",
      input: `${port}: request line "GARBAGE"`,
      port,
      raw: "GARBAGE\r\n\r\n",
      status: 400,
      notProblem: true,
    });
    out.push({
      category: "wire",
      input: `${port}: header without a colon`,
      port,
      raw: "GET / HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n",
      status: 400,
      notProblem: true,
    });
  }
  // A body whose chunked framing breaks after the headers: Deno.serve drops the connection without an answer
  // (status 0 here) — the handler's read fails, but there is no connection left to answer on (a known limit).
  out.push({
    category: "wire",
    input: "app: POST /odd/echo with a broken chunked body",
    port: "app",
    raw: "POST /odd/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" +
      "transfer-encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
    status: 0,
    notProblem: true,
  });
  out.push({
    category: "wire",
    input: "api: PUT kv/app/c with a broken chunked body",
    port: "api",
    raw: "PUT /api/v1/kv/app/c HTTP/1.1\r\nhost: x\r\nAUTH\r\n" +
      "transfer-encoding: chunked\r\n\r\nZZ\r\nvv\r\n0\r\n\r\n",
    status: 0,
    notProblem: true,
  });
  return out;
}

/** The test cluster's admin token: every API request of this suite carries it, so each row tests its input. */
let auth: Record<string, string> = {};

async function startNode(): Promise<TestCluster> {
  const cluster = await TestCluster.start(1, { fsync: "never" });
  auth = { authorization: `Bearer ${cluster.token}` };
  return cluster;
}

async function apiJson<T>(node: NodeProcess, path: string, init: RequestInit = {}) {
  const response = await fetch(node.apiUrl + path, { ...init, headers: { ...auth, ...init.headers } });
  const text = await response.text();
  return { status: response.status, text, body: (text ? JSON.parse(text) : undefined) as T };
}

async function send(node: NodeProcess, row: Row): Promise<Answer> {
  const base = row.port === "api" ? node.apiUrl : node.httpUrl;
  const startedAt = performance.now();
  if (row.raw !== undefined) {
    const authLine = auth.authorization ? `authorization: ${auth.authorization}` : "x-no-token: 1";
    const answer = await sendRaw(new URL(base).port, row.raw.replace("AUTH", authLine));
    return { ...answer, ms: performance.now() - startedAt };
  }
  // A request that is taken as valid may start a stream (kv-watch): the answer is what came within the limit.
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ROW_TIMEOUT_MS);
  let response: Response;
  let body = "";
  try {
    response = await fetch(base + row.path, {
      method: row.method,
      headers: row.port === "api" ? { ...auth, ...row.headers } : row.headers,
      body: row.body,
      signal: controller.signal,
    });
    body = await response.text().catch(() => "(a stream still open after the time limit)");
  } finally {
    clearTimeout(timer);
  }
  return {
    status: response.status,
    contentType: response.headers.get("content-type") ?? "",
    body,
    ms: performance.now() - startedAt,
  };
}

/** Writes bytes as they are and reads the answer's status line, content type and body. */
async function sendRaw(port: string, raw: string): Promise<Omit<Answer, "ms">> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
  try {
    await conn.write(new TextEncoder().encode(raw)).catch(() => 0);
    const chunks: string[] = [];
    const buffer = new Uint8Array(64 * 1024);
    const decoder = new TextDecoder();
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      chunks.push(decoder.decode(buffer.subarray(0, n), { stream: true }));
      const text = chunks.join("");
      const head = text.indexOf("\r\n\r\n");
      if (head >= 0) {
        const length = /content-length: *(\d+)/i.exec(text.slice(0, head))?.[1];
        if (length !== undefined && text.length - head - 4 >= Number(length)) break;
      }
    }
    const text = chunks.join("");
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    const head = text.indexOf("\r\n\r\n");
    return {
      status,
      contentType: /content-type: *([^\r\n]*)/i.exec(text.slice(0, head))?.[1] ?? "",
      body: head >= 0 ? text.slice(head + 4) : "",
    };
  } finally {
    conn.close();
  }
}

/** Why an answer does not satisfy its row, or undefined when it does. */
function mismatch(row: Row, answer: Answer): string | undefined {
  if (answer.status !== row.status) return `status ${answer.status}, expected ${row.status}`;
  if (row.withinMs !== undefined && answer.ms > row.withinMs) {
    return `answered after ${Math.round(answer.ms)} ms, expected within ${row.withinMs} ms`;
  }
  let text = answer.body;
  if (!row.notProblem) {
    if (!answer.contentType.startsWith("application/problem+json")) {
      return `content type "${answer.contentType}", expected application/problem+json`;
    }
    let problem: { detail?: unknown; status?: unknown };
    try {
      problem = JSON.parse(answer.body);
    } catch {
      return "the body is not JSON";
    }
    if (typeof problem.detail !== "string" || problem.detail === "") return "the problem has no detail";
    if (problem.status !== row.status) return `the problem says status ${problem.status}`;
    text = problem.detail;
  }
  for (const word of row.names ?? []) {
    if (!text.toLowerCase().includes(word.toLowerCase())) return `the answer does not name "${word}"`;
  }
  return undefined;
}

function summary(results: Array<{ row: Row; answer: Answer }>): string {
  const categories = new Map<string, { inputs: number; statuses: Map<number, number> }>();
  for (const { row, answer } of results) {
    let entry = categories.get(row.category);
    if (!entry) categories.set(row.category, entry = { inputs: 0, statuses: new Map() });
    entry.inputs++;
    entry.statuses.set(answer.status, (entry.statuses.get(answer.status) ?? 0) + 1);
  }
  const lines = ["| category | inputs | answers by status |", "|---|---:|---|"];
  for (const [category, entry] of categories) {
    const statuses = [...entry.statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(", ");
    lines.push(`| ${category} | ${entry.inputs} | ${statuses} |`);
  }
  lines.push(`| **all** | **${results.length}** | |`);
  return lines.join("\n");
}

async function deployAndWait(cluster: TestCluster, node: NodeProcess): Promise<void> {
  for (const name of ["peer", "odd"]) {
    const slice = await buildSlice(new URL(`../fixtures/bad_input/${name}.ts`, import.meta.url).pathname);
    const form = new FormData();
    form.append("manifest", JSON.stringify(slice.manifest));
    form.append("bundle", new Blob([slice.bundle as Uint8Array<ArrayBuffer>]), "bundle.js");
    const { status, text } = await apiJson(node, "/api/v1/artifacts", { method: "POST", body: form });
    if (status !== 201 && status !== 200) throw new Error(`push ${name}: ${status} ${text}`);
  }
  for (const name of ["peer", "odd"]) {
    const { status, body } = await apiJson(node, "/api/v1/deploy", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ artifact: `org.example.bad:${name}:1.0.0`, instances: 1 }),
    });
    if (status !== 201 && status !== 200) {
      throw new Error(`deploy ${name}: ${status} ${JSON.stringify(body)}`);
    }
  }
  await cluster.waitFor("odd and peer ACTIVE and routed", async () => {
    const slices = (await apiJson<{ slices: SliceStatus[] }>(node, "/api/v1/slices")).body.slices;
    const active = ["odd", "peer"].every((name) =>
      slices.some((s) =>
        s.slice === `org.example.bad:${name}` && s.instances.length === 1 &&
        s.instances.every((i) => i.state === "ACTIVE")
      )
    );
    const routed = await fetch(`${node.httpUrl}/odd/things/1`).then((r) =>
      r.body?.cancel().then(() => r.status)
    );
    return active && routed === 200;
  }, 90_000);
}

Deno.test("bad input: every malformed request to the API and the app port gets a problem naming what was wrong", async () => {
  const cluster = await startNode();
  try {
    await cluster.waitFor(
      "a leader",
      async () => (await apiJson<{ isLeader: boolean }>(cluster.nodes[0], "/api/v1/status")).body.isLeader,
    );
    const [node] = cluster.nodes;
    await deployAndWait(cluster, node);
    const results: Array<{ row: Row; answer: Answer }> = [];
    const failures: string[] = [];
    for (const row of rows()) {
      const answer = await send(node, row);
      results.push({ row, answer });
      const why = mismatch(row, answer);
      if (why) failures.push(`${row.category} / ${row.input}: ${why}\n    ${answer.body.slice(0, 300)}`);
    }
    console.log(`\n${summary(results)}\n`);
    if (Deno.env.get("BAD_INPUT_TABLE")) {
      await Deno.writeTextFile(
        Deno.env.get("BAD_INPUT_TABLE")!,
        "| category | input | status | detail |\n|---|---|---:|---|\n" + results.map(({ row, answer }) => {
          let detail = "";
          try {
            const parsed = JSON.parse(answer.body);
            detail = parsed.detail ?? parsed.error?.message ?? "";
          } catch { /* not JSON */ }
          return `| ${row.category} | \`${row.input.slice(0, 80)}\` | ${answer.status} | ${
            String(detail).replaceAll("|", "\\|").slice(0, 160)
          } |`;
        }).join("\n") + "\n",
      );
    }
    // The write with the overflowing timeout was refused, not applied.
    const { status } = await apiJson(node, "/api/v1/kv/app/n");
    equal(status, 404, "a refused write must not be applied");
    ok(
      failures.length === 0,
      `${failures.length} of ${results.length} inputs got the wrong answer:\n${failures.join("\n")}`,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${cluster.logs().slice(-8_000)}`);
  } finally {
    await cluster.close();
  }
});
