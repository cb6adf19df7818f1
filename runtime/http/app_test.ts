import { deepStrictEqual, equal, match, rejects, throws } from "node:assert/strict";
import { AetherError, createLogger } from "../core/mod.ts";
import { buildRequest, outcomeResponse, readJson, splitUrl } from "./app.ts";
import { weightsRecord } from "./api.ts";

Deno.test("splitUrl separates path and query without URL parsing", () => {
  deepStrictEqual(splitUrl("http://127.0.0.1:8070/api/v1/x?verbose=1&a=b"), {
    path: "/api/v1/x",
    query: "verbose=1&a=b",
  });
  deepStrictEqual(splitUrl("http://h/"), { path: "/", query: "" });
  deepStrictEqual(splitUrl("http://h"), { path: "/", query: "" });
  deepStrictEqual(splitUrl("http://h/p#frag?x"), { path: "/p", query: "" });
});

Deno.test("the request is the body, then declared query parameters, then path parameters", () => {
  const route = { queryParams: ["verbose", "limit"] };
  deepStrictEqual(buildRequest(route, { a: 1, id: "body" }, { id: "o-1" }, "verbose=true&other=x"), {
    a: 1,
    id: "o-1",
    verbose: "true",
  });
  deepStrictEqual(buildRequest(route, undefined, {}, ""), {});
  deepStrictEqual(buildRequest(route, undefined, { id: "7" }, "limit=3"), { id: "7", limit: "3" });
  // Undeclared query parameters are ignored.
  deepStrictEqual(buildRequest({ queryParams: [] }, undefined, {}, "verbose=1"), {});
  // A non-object body passes as it is when there are no parameters, else it is a client error.
  deepStrictEqual(buildRequest(route, [1, 2], {}, ""), [1, 2]);
  equal(buildRequest(route, "text", {}, ""), "text");
  throws(
    () => buildRequest(route, [1], { id: "x" }, ""),
    (e: AetherError) => e.status === 400 && /must be a JSON object/.test(e.message),
  );
});

Deno.test("bodies: malformed JSON is 400, over the limit is 413 (declared or streamed), empty is none", async () => {
  const post = (body: BodyInit | null, headers: Record<string, string> = {}) =>
    new Request("http://h/x", { method: "POST", body, headers });
  deepStrictEqual(await readJson(post('{"a":[1,2]}'), 100), { a: [1, 2] });
  equal(await readJson(post(""), 100), undefined);
  equal(await readJson(new Request("http://h/x"), 100), undefined);
  await rejects(
    readJson(post("{nope"), 100),
    (e: AetherError) => e.status === 400 && /not valid JSON/.test(e.message),
  );
  await rejects(readJson(post("x".repeat(101)), 100), (e: AetherError) => e.status === 413);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 5; i++) controller.enqueue(new TextEncoder().encode("x".repeat(30)));
      controller.close();
    },
  });
  await rejects(
    readJson(post(stream), 100),
    (e: AetherError) => e.status === 413 && /larger than the limit of 100/.test(e.message),
  );
});

Deno.test("outcomes: value as JSON, the slice's status and headers, 204 for nothing, problems for errors", async () => {
  const route = { slice: "g:a", method: "m" };
  const plain = outcomeResponse({ ok: true, value: { x: 1 } }, route, "/p", "rid");
  equal(plain.status, 200);
  equal(plain.headers.get("content-type"), "application/json");
  equal(plain.headers.get("x-request-id"), "rid");
  deepStrictEqual(await plain.json(), { x: 1 });

  const created = outcomeResponse(
    {
      ok: true,
      value: { id: 1 },
      status: 201,
      headers: { location: "/o/1", "content-length": "9", "x-request-id": "forged" },
    },
    route,
    "/p",
    "rid",
  );
  equal(created.status, 201);
  equal(created.headers.get("location"), "/o/1");
  equal(created.headers.get("x-request-id"), "rid", "a slice cannot replace the request id");
  deepStrictEqual(await created.json(), { id: 1 });

  const nothing = outcomeResponse({ ok: true, value: undefined }, route, "/p", "rid");
  equal(nothing.status, 204);
  equal(await nothing.text(), "");

  const html = outcomeResponse(
    { ok: true, value: "<b>hi</b>", headers: { "content-type": "text/html" } },
    route,
    "/p",
    "r",
  );
  equal(await html.text(), "<b>hi</b>");
  equal(html.headers.get("content-type"), "text/html");

  const failed = outcomeResponse(
    {
      ok: false,
      error: { name: "OrderNotFound", message: "order 7 does not exist", status: 404, details: { id: 7 } },
    },
    route,
    "/o/7",
    "rid-9",
  );
  equal(failed.status, 404);
  equal(failed.headers.get("content-type"), "application/problem+json");
  deepStrictEqual(await failed.json(), {
    type: "https://aether.dev/problems/slice-error",
    title: "OrderNotFound",
    status: 404,
    detail: "order 7 does not exist",
    slice: "g:a",
    method: "m",
    details: { id: 7 },
    instance: "/o/7",
    requestId: "rid-9",
  });
  const unmapped = outcomeResponse({ ok: false, error: { name: "Boom", message: "x" } }, route, "/p", "r");
  equal(unmapped.status, 500);
  await unmapped.body?.cancel();
});

Deno.test("routing bodies: two versions, lower is old, integer weights not both zero", () => {
  deepStrictEqual(weightsRecord("g:a", { "1.10.0": 1, "1.9.0": 3 }, 5), {
    oldVersion: "1.9.0",
    newVersion: "1.10.0",
    oldWeight: 3,
    newWeight: 1,
    updatedAt: 5,
  });
  const bad = (weights: unknown, pattern: RegExp) =>
    throws(
      () => weightsRecord("g:a", weights, 1),
      (e: AetherError) => e.status === 400 && pattern.test(e.message),
    );
  bad({ "1.0.0": 1 }, /exactly two versions/);
  bad({ "1.0.0": 1, "1.1.0": 1, "1.2.0": 1 }, /exactly two versions/);
  bad({ "1.0.0": 0, "1.1.0": 0 }, /both weights are 0/);
  bad({ "1.0.0": 1.5, "1.1.0": 1 }, /whole number/);
  bad({ "x": 1, "1.1.0": 1 }, /is not a version/);
  bad([1, 2], /expected an object/);
});

Deno.test('a slice status HTTP cannot carry (99, 101, 1000, "204", 2.5) is a 500 naming the slice, and a log line', async () => {
  for (const status of [99, 101, 199, 600, 1000, "204", 2.5, -1, null]) {
    const lines: string[] = [];
    const log = createLogger({ level: "info", sink: (line) => lines.push(line) });
    const response = outcomeResponse(
      { ok: true, value: { x: 1 }, status: status as number },
      { slice: "g:odd", method: "status" },
      "/odd/status",
      "rid-1",
      log,
    );
    equal(response.status, 500, `status ${JSON.stringify(status)}`);
    equal(response.headers.get("content-type"), "application/problem+json");
    const problem = await response.json();
    match(problem.detail, new RegExp(`g:odd\\.status answered with status ${JSON.stringify(status)}`));
    equal(problem.slice, "g:odd");
    equal(lines.length, 1, `one log line for ${JSON.stringify(status)}`);
    match(lines[0], /invalid HTTP status.*slice=g:odd/);
  }
  // The statuses a slice may choose still pass.
  for (const status of [200, 201, 302, 404, 599]) {
    const response = outcomeResponse(
      { ok: true, value: "x", status },
      { slice: "g:a", method: "m" },
      "/",
      "r",
    );
    equal(response.status, status);
    await response.body?.cancel();
  }
});

Deno.test("declared query parameters are decoded strictly: bad percent-encoding is a 400 naming the parameter", () => {
  const route = { queryParams: ["limit", "q"] };
  deepStrictEqual(buildRequest(route, undefined, {}, "q=a+b%20c&limit=2&limit=3"), {
    q: "a b c",
    limit: "2",
  });
  throws(
    () => buildRequest(route, undefined, {}, "limit=%ZZ"),
    (e: AetherError) => e.status === 400 && /query parameter limit: bad percent-encoding/.test(e.message),
  );
  throws(() => buildRequest(route, undefined, {}, "q=%ED%A0%80"), (e: AetherError) => e.status === 400);
  // Undeclared parameters are not read, so their encoding does not matter.
  deepStrictEqual(buildRequest(route, undefined, {}, "other=%ZZ"), {});
});
