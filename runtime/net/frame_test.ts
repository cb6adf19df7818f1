import assert from "node:assert/strict";
import {
  buildDataFrame,
  buildEntry,
  buildHeartbeat,
  entryBodyBytes,
  FRAME_PING,
  isChannel,
  parseHeartbeat,
  splitEntries,
} from "./_frame.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("a data frame keeps its entries, their channels and their order", () => {
  const entries = [buildEntry("c", bytes(1, 2)), buildEntry("invoke.v1", bytes()), buildEntry("m", bytes(9))];
  const body = entries.reduce((n, e) => n + entryBodyBytes(e), 0);
  const frame = buildDataFrame(1, entries, 0, entries.length, body);
  const { entries: out, error } = splitEntries(frame);
  assert.equal(error, undefined);
  assert.deepEqual(out.map((e) => [e.channel, [...e.payload]]), [["c", [1, 2]], ["invoke.v1", []], ["m", [
    9,
  ]]]);
});

Deno.test("a truncated data frame yields the whole entries before the damage and an error", () => {
  const entries = [buildEntry("c", bytes(1, 2, 3)), buildEntry("c", bytes(4, 5, 6))];
  const frame = buildDataFrame(1, entries, 0, 2, entryBodyBytes(entries[0]) + entryBodyBytes(entries[1]));
  const { entries: out, error } = splitEntries(frame.subarray(0, frame.byteLength - 1));
  assert.equal(out.length, 1);
  assert.deepEqual([...out[0].payload], [1, 2, 3]);
  assert.match(error!, /claims 3 bytes/);
  assert.match(splitEntries(bytes(1, 1)).error!, /without entries/);
  assert.match(splitEntries(bytes(1, 1, 0, 0, 0, 0, 0)).error!, /empty channel/);
});

Deno.test("a message alone is sent as its own frame without another copy", () => {
  const entry = buildEntry("i", bytes(7, 8, 9));
  const frame = buildDataFrame(2, [entry], 0, 1, entryBodyBytes(entry));
  assert.equal(frame.buffer, entry.buffer);
  assert.deepEqual([frame[0], frame[1]], [1, 2]);
  const { entries } = splitEntries(frame);
  assert.deepEqual(entries.map((e) => [e.channel, [...e.payload]]), [["i", [7, 8, 9]]]);
});

Deno.test("heartbeat frames round-trip and malformed ones are rejected", () => {
  assert.deepEqual(parseHeartbeat(buildHeartbeat(FRAME_PING, 7, 1234.5)), { seq: 7, sentAt: 1234.5 });
  assert.equal(parseHeartbeat(bytes(2, 0, 0)), undefined);
  const bad = buildHeartbeat(FRAME_PING, 1, 0);
  new DataView(bad.buffer).setFloat64(5, NaN);
  assert.equal(parseHeartbeat(bad), undefined);
});

Deno.test("channel names are short and plain", () => {
  for (const ok of ["c", "i", "m", "invoke.reply", "a:b-c_d"]) assert.ok(isChannel(ok), ok);
  for (const bad of ["", "x".repeat(33), "has space", "é", "a/b"]) assert.ok(!isChannel(bad), bad);
});
