import assert from "node:assert/strict";
import { formatRecord, loadFormatter, logsQuery } from "./logs.ts";

Deno.test("logsQuery: each flag to its query parameter, --follow as follow=true, nothing without flags", () => {
  assert.equal(logsQuery({}), "");
  const query = new URLSearchParams(
    logsQuery({
      node: "n2",
      slice: "org.example:orders",
      "request-id": "r 1",
      level: "warn",
      since: "5m",
      limit: "20",
      follow: true,
    }).slice(1),
  );
  assert.deepEqual(Object.fromEntries(query), {
    node: "n2",
    slice: "org.example:orders",
    requestId: "r 1",
    level: "warn",
    since: "5m",
    limit: "20",
    follow: "true",
  });
});

Deno.test("formatRecord: the node's text line, or the API's JSON with --json", async () => {
  await loadFormatter();
  const view = {
    time: "2026-01-02T03:04:05.678Z",
    level: "info" as const,
    node: "n1",
    msg: "echo said",
    fields: { slice: "g:a:1.0.0", requestId: "r1" },
  };
  assert.equal(
    formatRecord(view, false),
    "2026-01-02T03:04:05.678Z INFO  [n1] echo said slice=g:a:1.0.0 requestId=r1",
  );
  assert.deepEqual(JSON.parse(formatRecord(view, true)), view);
});
