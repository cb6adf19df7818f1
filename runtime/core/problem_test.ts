import { equal } from "node:assert/strict";
import { AetherError } from "./errors.ts";
import { PROBLEM_CONTENT_TYPE, problemResponse, REQUEST_ID_HEADER } from "./problem.ts";

Deno.test("problemResponse: an error's document with the caller's fields after its own, byte for byte", async () => {
  const response = problemResponse(
    new AetherError("bad_request", "blueprint line 3: replicas must be a number", { field: "replicas" }),
    { fields: { instance: "/api/v1/blueprints" } },
  );
  equal(response.status, 400);
  equal(response.headers.get("content-type"), PROBLEM_CONTENT_TYPE);
  equal(response.headers.get(REQUEST_ID_HEADER), null);
  equal(response.headers.get("retry-after"), null);
  equal(
    await response.text(),
    '{"type":"https://aether.dev/problems/bad_request","title":"bad request","status":400,' +
      '"detail":"blueprint line 3: replicas must be a number","field":"replicas","instance":"/api/v1/blueprints"}',
  );
});

Deno.test("problemResponse: a request id goes last in the document and into the x-request-id header", async () => {
  const response = problemResponse(new AetherError("not_found", "no route for GET /x"), {
    fields: { instance: "/x" },
    requestId: "0123456789abcdef",
  });
  equal(response.status, 404);
  equal(response.headers.get(REQUEST_ID_HEADER), "0123456789abcdef");
  equal(
    await response.text(),
    '{"type":"https://aether.dev/problems/not_found","title":"not found","status":404,' +
      '"detail":"no route for GET /x","instance":"/x","requestId":"0123456789abcdef"}',
  );
});

Deno.test("problemResponse: an overloaded error's retryAfterSeconds becomes retry-after in whole seconds", async () => {
  const response = problemResponse(
    new AetherError("overloaded", "2 watches are open, the limit is 2", { retryAfterSeconds: 1.2 }),
  );
  equal(response.status, 503);
  equal(response.headers.get("retry-after"), "2");
  equal(JSON.parse(await response.text()).retryAfterSeconds, 1.2);
  for (const bad of [-1, Number.NaN, "1", null]) {
    const answer = problemResponse(new AetherError("overloaded", "full", { retryAfterSeconds: bad }));
    equal(answer.headers.get("retry-after"), null, `retryAfterSeconds ${String(bad)}`);
  }
});

Deno.test("problemResponse: a document built elsewhere keeps its own status, title and fields; headers are added", async () => {
  const response = problemResponse(
    {
      type: "https://aether.dev/problems/method_not_allowed",
      title: "method not allowed",
      status: 405,
      detail: "/orders does not take PUT; it takes GET, POST",
    },
    { fields: { instance: "/orders" }, requestId: "r1", headers: { allow: "GET, POST" } },
  );
  equal(response.status, 405);
  equal(response.headers.get("allow"), "GET, POST");
  equal(response.headers.get("content-type"), PROBLEM_CONTENT_TYPE);
  equal(
    await response.text(),
    '{"type":"https://aether.dev/problems/method_not_allowed","title":"method not allowed","status":405,' +
      '"detail":"/orders does not take PUT; it takes GET, POST","instance":"/orders","requestId":"r1"}',
  );
});
