import { deepStrictEqual, equal } from "node:assert/strict";
import { parseWire } from "./_wire.ts";

Deno.test("a failure on the wire may carry a retry-after of up to an hour, and nothing else there", () => {
  const failure = { t: "e", c: 7, k: "overloaded", code: "overloaded", msg: "busy" };
  deepStrictEqual(parseWire(failure), failure);
  deepStrictEqual(parseWire({ ...failure, ra: 1 }), { ...failure, ra: 1 });
  for (const ra of [0, -1, 3_601, "1", Number.NaN]) {
    const parsed = parseWire({ ...failure, ra }) as { problem?: string; c?: number };
    equal(parsed.problem, "failure with a retry-after that is not 0-3600 seconds", String(ra));
    equal(parsed.c, 7);
  }
});
