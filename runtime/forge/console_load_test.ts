import { deepEqual, ok, throws } from "node:assert/strict";
import { ConsoleLoad, parseLoadRequest } from "./console_load.ts";

Deno.test("console load: a request is checked field by field, each problem named", () => {
  deepEqual(
    parseLoadRequest({ target: "POST /api/v1/orders", ratePerSecond: 50, durationSeconds: 60, body: "{}" }),
    {
      target: "POST /api/v1/orders",
      ratePerSecond: 50,
      durationSeconds: 60,
      body: "{}",
    },
  );
  throws(() => parseLoadRequest(null), /"target" must be like "POST \/api\/v1\/orders"/);
  throws(() => parseLoadRequest({ target: "FETCH /x", ratePerSecond: 1, durationSeconds: 1 }), /load: /);
  throws(
    () => parseLoadRequest({ target: "GET /", ratePerSecond: 0, durationSeconds: 1 }),
    /"ratePerSecond"/,
  );
  throws(
    () => parseLoadRequest({ target: "GET /", ratePerSecond: 1.5, durationSeconds: 1 }),
    /"ratePerSecond"/,
  );
  throws(
    () => parseLoadRequest({ target: "GET /", ratePerSecond: 1, durationSeconds: 0 }),
    /"durationSeconds"/,
  );
  throws(
    () =>
      parseLoadRequest({ target: "GET /", ratePerSecond: 1, durationSeconds: 1, body: "x".repeat(20_000) }),
    /"body" must be text of at most/,
  );
});

Deno.test("console load: a shape instead of a rate and a duration; its mistakes name the segment and column", () => {
  deepEqual(parseLoadRequest({ target: "GET /x", shape: "10/s for 5s, ramp 10..50/s over 10s" }), {
    target: "GET /x",
    shape: "10/s for 5s, ramp 10..50/s over 10s",
  });
  throws(
    () => parseLoadRequest({ target: "GET /x", shape: "10/s for 5s; ramp 10..50/s ovr 10s" }),
    /load: "shape" segment 2 "ramp 10..50\/s ovr 10s", column 28: expected "over" but found "ovr"/,
  );
  throws(
    () => parseLoadRequest({ target: "GET /x", shape: "10/s for 5s", ratePerSecond: 5 }),
    /a "shape" sets the rate and the duration/,
  );
  throws(() => parseLoadRequest({ target: "GET /x", shape: 5 }), /"shape" must be text/);
});

Deno.test("console load: a shaped run's points carry the target rate the shape asked for", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("ok"));
  const load = new ConsoleLoad();
  try {
    load.start({ target: "GET /", shape: "20/s for 1.5s, 60/s for 1.5s" }, [
      `http://127.0.0.1:${server.addr.port}`,
    ]);
    const view = load.view();
    deepEqual([view.running, view.shape, view.durationSeconds], [
      true,
      "20/s for 1500ms, 60/s for 1500ms",
      3,
    ]);
    while (load.view().running) await new Promise((r) => setTimeout(r, 50));
    const targets = load.view().points.map((p) => p.targetPerSecond);
    ok(targets.length >= 2 && targets[0] === 20 && targets.includes(60), `targets ${targets}`);
  } finally {
    load.stop();
    await server.shutdown();
  }
});
