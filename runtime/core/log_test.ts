import assert from "node:assert/strict";
import {
  createLogger,
  formatLogJson,
  formatLogText,
  type LogRecord,
  LogRing,
  matchesLogFilter,
} from "./log.ts";

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

function record(over: Partial<LogRecord> = {}): LogRecord {
  return { time: T0, level: "info", node: "n1", msg: "hello", fields: {}, ...over };
}

Deno.test("formatLogText: time, padded level, node, message and key=value fields (quoted when needed)", () => {
  const line = formatLogText(record({ fields: { a: 1, b: "two words", c: "plain", d: { x: true } } }));
  assert.equal(line, `2026-01-02T03:04:05.678Z INFO  [n1] hello a=1 b="two words" c=plain d={"x":true}`);
  assert.equal(
    formatLogText(record({ node: undefined, level: "error" })),
    "2026-01-02T03:04:05.678Z ERROR hello",
  );
});

Deno.test("formatLogText: newlines, ANSI escapes and other control characters are escaped (one line, no colour)", () => {
  const forged = "ok\n2026-01-02T03:04:05.678Z ERROR [n1] forged\r\x1b[31mred\x1b[0m\u2028\x9b\x00";
  const line = formatLogText(
    record({ msg: forged, fields: { v: forged, "k\nERROR [n1] x": 1, o: { s: "\x1b[2J" } } }),
  );
  // deno-lint-ignore no-control-regex
  assert.ok(!/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(line), `raw control character in ${line}`);
  assert.equal(line.split("\n").length, 1);
  assert.ok(
    line.includes("hello") === false &&
      line.includes(" ok\\n2026-01-02T03:04:05.678Z ERROR [n1] forged\\r\\x1b[31m"),
  );
  assert.ok(line.includes("\\u2028\\x9b\\x00"), line);
  assert.ok(line.includes(` "k\\nERROR [n1] x"=1`), line);
  assert.ok(line.includes(` o={"s":"\\u001b[2J"}`), line);
  // Plain text is untouched.
  assert.equal(
    formatLogText(record({ msg: "a/b c:d", fields: { "x.y": "p/q" } })),
    "2026-01-02T03:04:05.678Z INFO  [n1] a/b c:d x.y=p/q",
  );
});

Deno.test("formatLogJson: one JSON object per line; a field named like a reserved key keeps its value", () => {
  const line = formatLogJson(record({ fields: { requestId: "r1", msg: "mine", n: 2 } }));
  assert.ok(!line.includes("\n"));
  assert.deepEqual(JSON.parse(line), {
    time: "2026-01-02T03:04:05.678Z",
    level: "info",
    node: "n1",
    msg: "hello",
    requestId: "r1",
    "field.msg": "mine",
    n: 2,
  });
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const safe = JSON.parse(formatLogJson(record({ fields: { cyclic, ok: 1 } })));
  assert.equal(safe.ok, 1);
  assert.match(safe.cyclic, /unserializable/);
});

Deno.test("createLogger: json format, level threshold, errors as messages, every written record to onRecord", () => {
  const lines: string[] = [];
  const records: LogRecord[] = [];
  const log = createLogger({
    level: "info",
    name: "n2",
    format: "json",
    sink: (line) => lines.push(line),
    onRecord: (r) => records.push(r),
    now: () => T0,
  }).with({ component: "api" });
  log.debug("dropped");
  log.warn("boom", { error: new Error("disk full"), skipped: undefined, big: 10n });
  assert.equal(lines.length, 1);
  assert.deepEqual(JSON.parse(lines[0]), {
    time: "2026-01-02T03:04:05.678Z",
    level: "warn",
    node: "n2",
    msg: "boom",
    component: "api",
    error: "disk full",
    big: "10",
  });
  assert.deepEqual(records, [{
    time: T0,
    level: "warn",
    node: "n2",
    msg: "boom",
    fields: { component: "api", error: "disk full", big: "10" },
  }]);
  assert.equal(log.enabled("debug"), false);
  assert.equal(log.enabled("error"), true);
});

Deno.test("matchesLogFilter: node, minimum level, since, requestId and slice (with or without version)", () => {
  const r = record({ level: "warn", fields: { slice: "org.example:orders:1.2.0", requestId: "abc" } });
  assert.ok(matchesLogFilter(r, {}));
  assert.ok(matchesLogFilter(r, { node: "n1", level: "info", sinceMs: T0, requestId: "abc" }));
  assert.ok(matchesLogFilter(r, { slice: "org.example:orders" }));
  assert.ok(matchesLogFilter(r, { slice: "org.example:orders:1.2.0" }));
  assert.ok(!matchesLogFilter(r, { slice: "org.example:order" }));
  assert.ok(!matchesLogFilter(r, { node: "n2" }));
  assert.ok(!matchesLogFilter(r, { level: "error" }));
  assert.ok(!matchesLogFilter(r, { sinceMs: T0 + 1 }));
  assert.ok(!matchesLogFilter(r, { requestId: "abd" }));
  assert.ok(!matchesLogFilter(record(), { slice: "org.example:orders" }));
});

Deno.test("LogRing: keeps the newest maxRecords, counts what it dropped, answers newest-first queries", () => {
  const ring = new LogRing({ maxRecords: 3, maxBytes: 1000 });
  for (let i = 1; i <= 5; i++) ring.append(record({ msg: `m${i}`, time: T0 + i }), 10);
  assert.deepEqual(ring.stats, { records: 3, bytes: 30, maxRecords: 3, maxBytes: 1000, dropped: 2 });
  const newest = ring.query({ filter: {}, limit: 2 });
  assert.deepEqual(newest.records.map((r) => [r.seq, r.msg]), [[4, "m4"], [5, "m5"]]);
  assert.equal(newest.cursor, 5);
  assert.deepEqual(ring.query({ filter: { sinceMs: T0 + 4 }, limit: 10 }).records.map((r) => r.msg), [
    "m4",
    "m5",
  ]);
  const page = ring.query({ filter: {}, limit: 2, beforeSeq: 5 });
  assert.deepEqual(page.records.map((r) => r.seq), [3, 4], "the page before seq 5");
  assert.deepEqual(
    ring.query({ filter: {}, limit: 2, beforeSeq: 3 }).records,
    [],
    "nothing kept before seq 3",
  );
});

Deno.test("LogRing: maxBytes bounds the sum of sizes; a record larger than the ring is dropped, not kept", () => {
  const ring = new LogRing({ maxRecords: 100, maxBytes: 100 });
  for (let i = 0; i < 10; i++) ring.append(record({ msg: `m${i}` }), 30);
  assert.equal(ring.stats.records, 3);
  assert.ok(ring.stats.bytes <= 100);
  ring.append(record({ msg: "huge" }), 101);
  assert.equal(ring.stats.records, 0);
  assert.equal(ring.stats.dropped, 11);
  ring.append(record({ msg: "after" }), 10);
  assert.deepEqual(ring.query({ filter: {}, limit: 5 }).records.map((r) => [r.seq, r.msg]), [[12, "after"]]);
});

Deno.test("LogRing: a follower's cursor reads each matching record once, oldest first, and learns what it missed", () => {
  const ring = new LogRing({ maxRecords: 4, maxBytes: 1000 });
  ring.append(record({ msg: "a", fields: { requestId: "x" } }), 1);
  ring.append(record({ msg: "b" }), 1);
  let answer = ring.query({ filter: { requestId: "x" }, limit: 10, afterSeq: 0 });
  assert.deepEqual(answer.records.map((r) => r.msg), ["a"]);
  assert.equal(answer.cursor, 2, "the cursor moves past records that did not match");
  assert.equal(answer.missed, 0);
  for (const msg of ["c", "d", "e"]) ring.append(record({ msg, fields: { requestId: "x" } }), 1);
  answer = ring.query({ filter: { requestId: "x" }, limit: 2, afterSeq: answer.cursor });
  assert.deepEqual(answer.records.map((r) => r.msg), ["c", "d"]);
  assert.equal(answer.cursor, 4, "a full page ends at its last record");
  answer = ring.query({ filter: {}, limit: 10, afterSeq: answer.cursor });
  assert.deepEqual(answer.records.map((r) => r.msg), ["e"]);
  // Six more overwrite everything a slow follower at seq 5 had not read yet: it hears how many it missed.
  for (let i = 0; i < 6; i++) ring.append(record({ msg: `f${i}` }), 1);
  answer = ring.query({ filter: {}, limit: 10, afterSeq: 5 });
  assert.equal(answer.missed, 2);
  assert.deepEqual(answer.records.map((r) => r.seq), [8, 9, 10, 11]);
  assert.equal(answer.epoch, ring.epoch);
});

Deno.test("LogRing: limits must be positive integers", () => {
  assert.throws(() => new LogRing({ maxRecords: 0 }), /maxRecords must be a positive integer/);
  assert.throws(() => new LogRing({ maxBytes: 1.5 }), /maxBytes must be a positive integer/);
});
