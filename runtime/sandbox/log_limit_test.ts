import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { DEFAULT_SLICE_LOG_LIMITS, SliceLogLimiter } from "./_log_limit.ts";

const LIMITS = { linesPerSecond: 10, burstLines: 5, maxMessageChars: 8, maxFieldsChars: 20 };

Deno.test("SliceLogLimiter: a burst, then the rate; refused lines are counted and reported once", () => {
  const limiter = new SliceLogLimiter(LIMITS, 0);
  const admitted = (nowMs: number, n: number) =>
    Array.from({ length: n }, () => limiter.admit(nowMs)).filter(Boolean).length;
  assertEquals(admitted(0, 8), 5); // the burst
  assertEquals([limiter.dropped, limiter.takeUnreported(), limiter.takeUnreported()], [3, 3, 0]);
  assertEquals(admitted(100, 3), 1); // 10 lines/s: one line per 100 ms
  assertEquals(admitted(350, 3), 2); // 2.5 lines refilled, two whole ones
  assertEquals(admitted(10_000, 20), 5); // refills up to the burst, no further
  assertEquals(limiter.dropped, 3 + 2 + 1 + 15);
  // A clock that steps back refills nothing (and breaks nothing).
  assertEquals(admitted(5_000, 1), 0);
});

Deno.test("SliceLogLimiter: messages are cut and say so; oversized or unserializable fields become a note", () => {
  const limiter = new SliceLogLimiter(LIMITS, 0);
  assertEquals(limiter.message("12345678"), "12345678");
  assertEquals(limiter.message("123456789abc"), "12345678… [4 more characters cut]");
  assertEquals(limiter.fields(undefined), undefined);
  assertEquals(limiter.fields({ a: 1 }), { a: 1 });
  assertEquals(limiter.fields({ a: "x".repeat(30) }), {
    fieldsDropped: "38 characters of fields, over the 20 kept",
  });
});

Deno.test("SliceLogLimiter: limits must be positive (the rate may be fractional)", () => {
  new SliceLogLimiter({ ...DEFAULT_SLICE_LOG_LIMITS, linesPerSecond: 0.5 }, 0);
  for (
    const bad of [{ linesPerSecond: 0 }, { burstLines: 1.5 }, { maxMessageChars: -1 }, {
      maxFieldsChars: NaN,
    }]
  ) {
    throws(() => new SliceLogLimiter({ ...DEFAULT_SLICE_LOG_LIMITS, ...bad }, 0), RangeError);
  }
});
