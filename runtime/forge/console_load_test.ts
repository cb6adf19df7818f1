import { deepEqual, throws } from "node:assert/strict";
import { parseLoadRequest } from "./console_load.ts";

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
