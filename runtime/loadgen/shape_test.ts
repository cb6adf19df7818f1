/**
 * Load shapes: the grammar, every error naming its segment and column, the rate and the cumulative count over
 * time, the schedule's due times, and a shaped load against a real local server driven by an injected clock.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { formatReport, parseShape, startLoad } from "./mod.ts";

const close = (actual: number, expected: number, tolerance = 1e-6) =>
  assert(Math.abs(actual - expected) <= tolerance, `${actual} is not within ${tolerance} of ${expected}`);

Deno.test("shape: the issue's example parses into its segments, in order, with their times", () => {
  const shape = parseShape(
    "10/s for 10s, ramp 10..200/s over 30s, sine 50..150/s period 60s for 2m, spike 500/s for 5s",
  );
  assertEquals(
    shape.segments.map((s) => [s.kind, s.startMs, s.durationMs, s.fromPerSecond, s.toPerSecond]),
    [
      ["step", 0, 10_000, 10, 10],
      ["ramp", 10_000, 30_000, 10, 200],
      ["sine", 40_000, 120_000, 50, 150],
      ["spike", 160_000, 5_000, 500, 500],
    ],
  );
  assertEquals(shape.segments[2].periodMs, 60_000);
  assertEquals(shape.durationMs, 165_000);
  // 100 + (10+200)/2·30 + 100·120 (two whole periods: the mean) + 2500
  close(shape.expectedRequests, 100 + 3150 + 12_000 + 2500);
  assertEquals(shape.planned, 17_750);
  assertEquals(
    shape.describe(),
    "10/s for 10s, ramp 10..200/s over 30s, sine 50..150/s period 1m for 2m, spike 500/s for 5s",
  );
  // The description parses back to the same shape.
  assertEquals(parseShape(shape.describe()).segments.map((s) => s.kind), shape.segments.map((s) => s.kind));
});

Deno.test("shape: ; separates too, units /m and ms, step and idle words, case of keywords", () => {
  const shape = parseShape("step 600/m for 500ms; idle for 2s;RAMP 0..60/m OVER 1m");
  assertEquals(shape.segments.map((s) => [s.kind, s.fromPerSecond, s.toPerSecond, s.durationMs]), [
    ["step", 10, 10, 500],
    ["idle", 0, 0, 2_000],
    ["ramp", 0, 1, 60_000],
  ]);
  close(shape.expectedRequests, 5 + 30);
});

Deno.test("shape: the rate over time (the clock is the argument) for a step, a ramp, a sine and a spike", () => {
  const shape = parseShape(
    "10/s for 10s, ramp 10..200/s over 30s, sine 50..150/s period 60s for 2m, spike 500/s for 5s",
  );
  const rates: [number, number][] = [
    [0, 10],
    [9_999, 10],
    [10_000, 10], // the ramp starts at its low
    [25_000, 105], // half-way up
    [39_999, 200 - (190 / 30_000)],
    [40_000, 50], // the sine starts at its low,
    [55_000, 100], // passes the middle a quarter period in,
    [70_000, 150], // is at its high half a period in,
    [100_000, 50], // and back at its low after a period
    [160_000, 500],
    [164_999, 500],
    [165_000, 0], // after the end
    [-1, 0],
  ];
  for (const [t, rate] of rates) close(shape.rateAt(t), rate, 1e-6);
  // The cumulative count is the integral of the rate.
  close(shape.requestsBy(5_000), 50);
  close(shape.requestsBy(25_000), 100 + (10 + 105) / 2 * 15);
  close(shape.requestsBy(100_000), 100 + 3150 + 6000);
  close(shape.requestsBy(1e9), shape.expectedRequests);
});

Deno.test("shape: request i is due when the count reaches i; each second gets the rate's integral over it", () => {
  const shape = parseShape(
    "idle for 1s, ramp 0..100/s over 10s, sine 20..80/s period 4s for 8s, 50/s for 2s",
  );
  const due = Array.from({ length: shape.planned }, (_, i) => shape.dueAtMs(i));
  assert(due.every((t, i) => i === 0 || t >= due[i - 1]), "due times never go back");
  assert(due[0] >= 1_000, `nothing is due while idle (first at ${due[0]} ms)`);
  assert(due.at(-1)! < shape.durationMs, "the last request is due before the end");
  for (let i = 0; i < due.length; i += 97) close(shape.requestsBy(due[i]), i, 1e-3);
  for (let second = 0; second < shape.durationMs / 1000; second++) {
    const sent = due.filter((t) => t >= second * 1000 && t < (second + 1) * 1000).length;
    const expected = shape.requestsBy((second + 1) * 1000) - shape.requestsBy(second * 1000);
    assert(Math.abs(sent - expected) <= 1, `second ${second}: ${sent} due, the shape asks ${expected}`);
  }
  assertEquals(due.length, Math.ceil(0 + 500 + 400 + 100));
});

Deno.test("shape: a ramp down to 0 and a step at 0/s schedule every request inside the shape", () => {
  for (
    const text of [
      "ramp 100..0/s over 3s",
      "0/s for 1s, ramp 7..0/s over 3s, 0/s for 2s",
      "ramp 0..3/s over 1s",
    ]
  ) {
    const shape = parseShape(text);
    const due = Array.from({ length: shape.planned }, (_, i) => shape.dueAtMs(i));
    assert(due.every((t) => Number.isFinite(t) && t >= 0 && t <= shape.durationMs), `${text}: ${due}`);
    assert(due.every((t, i) => i === 0 || t >= due[i - 1]), `${text}: in order`);
  }
  assertEquals(parseShape("ramp 100..0/s over 3s").planned, 150);
  assertEquals(parseShape("ramp 0..3/s over 1s").planned, 2); // 1.5 requests: rounded up
});

/** Parses `text` and returns the error's message and its segment, line and column. */
function refusal(text: string, file = false): { message: string; [extra: string]: unknown } {
  try {
    parseShape(text, file ? "shape.txt" : "--shape", { file });
  } catch (e) {
    assert(e instanceof AetherError, `not an AetherError: ${e}`);
    assertEquals(e.code, "invalid_flag");
    return { message: e.message, ...e.extra };
  }
  throw new Error(`"${text}" was accepted`);
}

Deno.test("shape errors: each names the segment and the column and what was expected", () => {
  const cases: [string, number, number, RegExp][] = [
    // text, segment, column, message
    [
      "ramp 10..400/s ovr 60s",
      1,
      16,
      /segment 1 "ramp 10\.\.400\/s ovr 60s", column 16: expected "over" but found "ovr"/,
    ],
    [
      "10/s for 10s, ramp 10-400/s over 60s",
      2,
      20,
      /segment 2 .*column 20: "10-400\/s" is not a range of rates like 10\.\.400\/s/,
    ],
    [
      "10/s for 10s, wobble 5/s for 1s",
      2,
      15,
      /column 15: "wobble" does not start a segment; expected "RATE for TIME"/,
    ],
    ["10/x for 10s", 1, 1, /column 1: "10\/x" is not a rate like 100\/s/],
    ["10/s for ten", 1, 10, /column 10: "ten" is not a time like 30s/],
    ["10/s for 0s", 1, 10, /column 10: "0s" must be above 0 and at most 24h/],
    ["10/s for", 1, 9, /column 9: expected a time like 30s after the end/],
    ["10/s for 10s 20s", 1, 14, /column 14: unexpected "20s" after a complete segment/],
    [
      "sine 150..50/s period 60s for 2m",
      1,
      6,
      /column 6: a sine goes from its low to its high: write 50\.\.150/,
    ],
    ["sine 50..150/s for 2m", 1, 16, /column 16: expected "period" but found "for"/],
    ["sine 50..150/s period 60s 2m", 1, 27, /column 27: expected "for" but found "2m"/],
    ["ramp 1/s..6/m over 1m", 1, 6, /column 6: "1\/s\.\.6\/m" mixes units/],
    ["spike 200000/s for 1s", 1, 7, /column 7: "200000\/s" is above the most, 100000\/s/],
    ["10/s for 1s,, 5/s for 1s", 2, 13, /segment 2 "", column 13: an empty segment/],
    ["10/s for 20h, 5/s for 5h", 2, 15, /segment 2 .*column 15: the shape runs past 24h/],
    ["idle 5s", 1, 6, /column 6: expected "for" but found "5s"/],
  ];
  for (const [text, segment, column, message] of cases) {
    const got = refusal(text);
    assert(message.test(got.message), `${text}: ${got.message}`);
    assertEquals([got.segment, got.column, got.field], [segment, column, "--shape"], text);
  }
});

Deno.test("shape errors: a whole shape that is empty, too long or sends nothing", () => {
  assert(/--shape has no segment/.test(refusal("   ").message));
  assert(/sends no request at all/.test(refusal("idle for 10s, ramp 0..0/s over 5s").message));
  assert(/longer than 65536 characters/.test(refusal("1/s for 1s,".repeat(7000)).message));
  assert(/more than the most, 1000/.test(refusal(Array(1001).fill("1/s for 1s").join(",")).message));
});

Deno.test("shape file: one segment a line, # comments and blank lines skipped; errors name line and column", () => {
  const text = "# warm up\n10/s for 5s\n\n  ramp 10..50/s over 10s   # climb\nspike 200/s for 2s\r\n";
  const shape = parseShape(text, "shape.txt", { file: true });
  assertEquals(shape.segments.map((s) => s.kind), ["step", "ramp", "spike"]);
  assertEquals(shape.segments[1].source, "ramp 10..50/s over 10s");
  const got = refusal("# warm up\n10/s for 5s\n  ramp 10..50/s upto 10s # climb\n", true);
  assertEquals([got.line, got.column, got.segment], [3, 17, 2]);
  assert(/^shape\.txt line 3, column 17 \("ramp 10\.\.50\/s upto 10s"\): expected "over"/.test(got.message));
  assert(/shape\.txt has no segment/.test(refusal("# only a comment\n\n", true).message));
});

Deno.test("shaped load: with an injected clock, the requests due by each moment are sent, and the live target follows the shape", async () => {
  let arrivals = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    arrivals++;
    return new Response("ok");
  });
  let now = 1_000_000;
  const clock = { now: () => now };
  const run = startLoad({
    target: "GET /x",
    urls: [`http://127.0.0.1:${server.addr.port}`],
    shape: parseShape("idle for 200ms, ramp 0..200/s over 1s"),
    clock,
  });
  try {
    assertEquals([run.progress().sent, run.progress().targetPerSecond], [0, 0]);
    now += 650; // 450 ms up the ramp: 90/s now; 0.45 s · 90/s / 2 = 20.25, so requests 0..20 are due
    await waitFor(() => run.progress().sent === 21, "21 sent by 650 ms");
    assertEquals(Math.round(run.progress().targetPerSecond * 1e6) / 1e6, 90);
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(run.progress().sent, 21, "nothing more is sent while the clock stands still");
    now += 600; // past the end: all 100
    const report = await run.finished;
    assertEquals([report.planned, report.sent, report.succeeded, arrivals], [100, 100, 100, 100]);
    assertEquals(report.shape, "idle for 200ms, ramp 0..200/s over 1s");
    assertEquals(report.durationMs, 1_200);
    // By segment: nothing in the idle one; the ramp's first answer timed (a cold start after idle shows there).
    assertEquals(
      report.perSegment?.map((s) => [s.segment, s.startMs, s.requests, s.succeeded]),
      [["idle for 200ms", 0, 0, 0], ["ramp 0..200/s over 1s", 200, 100, 100]],
    );
    assertEquals(report.perSegment![0].firstLatencyMs, null);
    // (Latencies are read from the injected clock, which stands still while requests are answered: 0 ms.)
    assertEquals([report.perSegment![1].firstLatencyMs, report.perSegment![1].latency.count], [0, 100]);
    const text = formatReport(report);
    assert(/per segment idle for 200ms\s+0 requests\n/.test(text), text);
    assert(
      /ramp 0\.\.200\/s over 1s\s+100 requests\s+100\.0% ok\s+first [\d.]+ms\s+p50 .* p95 .* p99 /.test(text),
      text,
    );
  } finally {
    run.stop();
    await run.finished;
    await server.shutdown();
  }
});

Deno.test("shaped load: a shape with a rate or a duration beside it is refused", () => {
  throws(
    () =>
      startLoad({
        target: "GET /",
        urls: ["http://127.0.0.1:1"],
        shape: parseShape("1/s for 1s"),
        ratePerSecond: 5,
      }),
    /a shape sets the rate and the duration: give shape alone/,
  );
});

async function waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
