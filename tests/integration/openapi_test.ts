/**
 * The OpenAPI document a real node serves at /api/v1/openapi.json: open (no token), valid OpenAPI 3.1 by a
 * maintained validator, complete against the node's router (every route it serves is an operation and every
 * operation is routed), and truthful: every operation called as admin without a body answers its documented
 * success status, content type and required top-level fields, or a documented problem status as
 * application/problem+json.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { openApiPath } from "../../runtime/api/mod.ts";
import { startInProcessNode } from "../_support/in_process_node.ts";

interface Operation {
  "x-aether-role": string;
  responses: Record<
    string,
    { content?: Record<string, { schema?: { required?: string[] } }>; $ref?: string }
  >;
}
type Document = { paths: Record<string, Record<string, Operation>> };

async function fetchDocument(api: string, token?: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${api}/api/v1/openapi.json`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: await response.json() };
}

/** Well-formed values of things that do not exist, so a lookup gets as far as its 404. */
const PARAMETER_VALUES: Record<string, string> = {
  key: "app/openapi-test",
  coordinates: "acme:absent:1.0.0",
  id: "acme:absent:1.0.0",
  base: "acme:absent",
  artifact: "acme:absent",
  target: "acme:absent",
  method: "hello",
};

/** Bodies that succeed, for operations whose success the empty body cannot reach. */
const BODIES: Record<string, { type: string; body: string }> = {
  "POST /api/v1/tokens": {
    type: "application/json",
    body: JSON.stringify({ name: "openapi", role: "viewer" }),
  },
};

/** A concrete URL path for an OpenAPI path. */
function concrete(path: string): string {
  return path.replace(/\{([a-z]+)\}/gi, (_, name: string) => PARAMETER_VALUES[name] ?? "x1y2");
}

Deno.test("openapi: a node serves a valid OpenAPI 3.1 document, without a token, listing exactly its routes", async () => {
  const n = await startInProcessNode();
  try {
    const { status, body } = await fetchDocument(n.api);
    equal(status, 200, JSON.stringify(body));
    const result = await new Validator().validate(body as Record<string, unknown>);
    deepStrictEqual(result.errors ?? [], [], JSON.stringify(result.errors, null, 2));
    const documented = new Set<string>();
    for (const [path, item] of Object.entries((body as Document).paths)) {
      for (const method of Object.keys(item)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    const routed = new Set(n.node.apiRoutes.map((r) => `${r.method} ${openApiPath(r.path)}`));
    const undocumented = [...routed].filter((r) => !documented.has(r));
    deepStrictEqual(undocumented, [], `routes the OpenAPI document lacks: ${undocumented.join(", ")}`);
    const unrouted = [...documented].filter((r) => !routed.has(r));
    deepStrictEqual(unrouted, [], `operations the router does not serve: ${unrouted.join(", ")}`);
  } finally {
    await n.close();
  }
});

Deno.test("openapi: every operation answers what the document says (called as admin)", async () => {
  const n = await startInProcessNode();
  try {
    const document = (await fetchDocument(n.api)).body as Document;
    let checked = 0;
    let successes = 0;
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const what = `${method.toUpperCase()} ${path}`;
        const sent = BODIES[what];
        const response = await fetch(n.api + concrete(path), {
          method: method.toUpperCase(),
          headers: { authorization: `Bearer ${n.admin}`, ...(sent ? { "content-type": sent.type } : {}) },
          body: sent?.body,
          signal: AbortSignal.timeout(10_000),
        });
        const type = (response.headers.get("content-type") ?? "").split(";")[0];
        // Event streams never end: read only what can be read whole.
        const text = type === "text/event-stream"
          ? (await response.body?.cancel(), "")
          : await response.text();
        const answer = operation.responses[String(response.status)];
        ok(answer, `${what} answered ${response.status}, which the document does not list`);
        if (response.status >= 400) {
          equal(type, "application/problem+json", `${what}: a ${response.status} is a problem document`);
        } else if (type !== "text/event-stream") {
          ok(answer.content && type in answer.content, `${what}: content-type ${type} is not documented`);
        }
        if (response.status < 300 && type === "application/json") {
          const body = JSON.parse(text);
          for (const name of answer.content?.[type]?.schema?.required ?? []) {
            ok(name in body, `${what}: the answer lacks ${name}, which the document requires: ${text}`);
          }
          successes++;
        }
        checked++;
      }
    }
    ok(checked >= 40, `checked ${checked} operations`);
    ok(successes >= 15, `${successes} answers were successes`);
  } finally {
    await n.close();
  }
});

Deno.test("openapi: with --closed-probes the document, like the probes, needs a viewer token", async () => {
  const n = await startInProcessNode(["--closed-probes"]);
  try {
    equal((await fetchDocument(n.api)).status, 401);
    equal((await fetchDocument(n.api, n.admin)).status, 200);
  } finally {
    await n.close();
  }
});
